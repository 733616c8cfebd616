"""Every error celeriac raises, under one root.

``CeleriacError`` is the root; each layer has a subtree (configuration, storage,
serialization, tasks). Celery's control-flow exceptions keep Celery's names so a
ported project catches the same things:

* ``Retry`` is raised by ``Task.retry``; the worker records RETRY and re-queues.
* ``Ignore`` tells the worker to record nothing further; ``Reject`` drops or
  re-queues the job.
* ``SoftTimeLimitExceeded`` is raised inside a task when its soft limit passes;
  ``TimeLimitExceeded`` is the recorded failure when the hard limit stops it.
* ``WorkerLostError`` is recorded when the process running a task died.
"""

from __future__ import annotations

from typing import Any


class CeleriacError(Exception):
    """A celeriac error."""

    def __init__(self, *args: Any) -> None:
        if not args and self.__doc__:
            args = (self.__doc__.strip().splitlines()[0],)
        super().__init__(*args)


CeleryError = CeleriacError  # Celery's name for the root, so ``except CeleryError`` ports


# -- configuration -----------------------------------------------------------
class ImproperlyConfigured(CeleriacError):
    """celeriac is not configured correctly."""


class NotRegistered(CeleriacError, KeyError):
    """The task is not registered in this app."""

    def __str__(self) -> str:
        return Exception.__str__(self)


# -- storage -----------------------------------------------------------------
class DatabaseError(CeleriacError):
    """A database operation failed."""


class OperationalError(DatabaseError):
    """The database cannot be reached or refused the connection."""


class SchemaError(DatabaseError):
    """celeriac's schema is missing or newer than this version of celeriac."""


# -- serialization -------------------------------------------------------------
class SerializationError(CeleriacError):
    """A value could not be serialized or deserialized."""


class EncodeError(SerializationError, TypeError):
    """A value could not be serialized."""


class DecodeError(SerializationError, ValueError):
    """A message or result could not be decoded."""


class ContentDisallowed(SerializationError):
    """The content type is not in ``accept_content``."""


class PayloadTooLarge(SerializationError, ValueError):
    """The serialized task arguments exceed ``task_max_payload_size``."""


# -- tasks and results -----------------------------------------------------------
class TaskError(CeleriacError):
    """A task-level error."""


class TimeoutError(TaskError):
    """The operation timed out."""


class TaskRevokedError(TaskError):
    """The task has been revoked, so no result is available."""


class MaxRetriesExceededError(TaskError):
    """The task's max retry limit has been exceeded."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        super().__init__(*args)
        self.task_args = task_args
        self.task_kwargs = task_kwargs


class ChordError(TaskError):
    """A task of a chord's header failed, so the body cannot run."""


class QueueNotFound(TaskError, KeyError):
    """The queue is not known."""


class RemoteTaskError(TaskError):
    """A task failed with an exception whose type cannot be imported here.

    The client re-creates the remote exception as a subclass of this one carrying the
    remote type's name and module, so ``except RemoteTaskError`` catches all of them.
    """


# -- control flow (Celery's names) ------------------------------------------------
class Retry(TaskError):
    """The task is to be retried later."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: Any = None,
        is_eager: bool = False,
        sig: Any = None,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        super().__init__(message or self.humanize())

    def humanize(self) -> str:
        when = f"in {self.when}s" if isinstance(self.when, int | float) else f"at {self.when}"
        return f"Retry {when}: {self.exc!r}" if self.exc else f"Retry {when}"

    def __reduce__(self) -> Any:
        return self.__class__, (self.message, self.exc, self.when)


class Ignore(TaskError):
    """The worker records nothing further for this task."""


class Reject(TaskError):
    """The worker rejects the job; with ``requeue=True`` it is queued again."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)


class SoftTimeLimitExceeded(Exception):
    """The soft time limit has been exceeded."""

    def __str__(self) -> str:
        return f"SoftTimeLimitExceeded{self.args!r}"


class TimeLimitExceeded(Exception):
    """The hard time limit has been exceeded; the task was stopped."""

    def __str__(self) -> str:
        return f"TimeLimitExceeded{self.args!r}"


class WorkerLostError(Exception):
    """The process running the task exited prematurely."""


class Terminated(Exception):
    """The task was terminated by a revoke with ``terminate=True``."""


class WorkerShutdown(SystemExit):
    """Raised to shut the worker down."""


__all__ = [
    "CeleriacError",
    "CeleryError",
    "ChordError",
    "ContentDisallowed",
    "DatabaseError",
    "DecodeError",
    "EncodeError",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "OperationalError",
    "PayloadTooLarge",
    "QueueNotFound",
    "Reject",
    "RemoteTaskError",
    "Retry",
    "SchemaError",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "WorkerShutdown",
]
