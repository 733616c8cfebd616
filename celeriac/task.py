"""Task and the request context: delay / apply_async / apply / retry / update_state.

A task is a singleton instance of a ``Task`` subclass made by ``@app.task``. Options
that Celery reads from configuration (``acks_late`` → ``task_acks_late`` and so on) are
resolved when read, so ``config_from_object`` after the tasks are defined still applies.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import random
import sys
import traceback as tb_module
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import _state, states
from celeriac.canvas import Signature
from celeriac.exceptions import (
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Retry,
)

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult, EagerResult

logger = logging.getLogger(__name__)


class Context:
    """``self.request``: what the worker knows about the running task (Celery's fields)."""

    id: str | None = None
    task: str | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    retries = 0
    is_eager = False
    called_directly = True
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    origin: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: Any = None
    chain: Any = None
    callbacks: Any = None
    errbacks: Any = None
    correlation_id: str | None = None
    reply_to: str | None = None
    delivery_info: dict[str, Any] = {}
    headers: dict[str, Any] | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    ignore_result = False
    shadow: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    lang = "py"
    utc = True
    properties: dict[str, Any] = {}
    stamps: dict[str, Any] = {}
    stamped_headers: list[str] = []
    replaced_task_nesting = 0
    job_id: int | None = None
    attempt: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.update(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for mapping in (*args, kwargs):
            self.__dict__.update(mapping)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Context:
        """A context holding ``values`` itself (not a copy): the worker's per-job path."""
        context = cls.__new__(cls)
        context.__dict__ = values
        return context

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @property
    def time_limit(self) -> float | None:
        return self.timelimit[0] if self.timelimit else None

    @property
    def soft_time_limit(self) -> float | None:
        return self.timelimit[1] if self.timelimit else None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"<Context: {self.__dict__!r}>"


class ConfigOption:
    """A task attribute that falls back to an app setting when not set on the task."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if self.name in instance.__dict__:
            return instance.__dict__[self.name]
        return instance.app.conf.get(self.setting)

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = value


def _default_retry_countdown(task: Task, retries: int) -> float:
    return float(task.default_retry_delay)


class Task:
    """A task: subclass it, or let ``@app.task`` make one from a function."""

    name: str = ""
    app: Celery
    typing = True
    max_retries: int | None = 3
    default_retry_delay: float = 180
    autoretry_for: Sequence[type[BaseException]] = ()
    dont_autoretry_for: Sequence[type[BaseException]] = ()
    retry_kwargs: dict[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter = True
    throws: Sequence[type[BaseException]] = ()
    queue: str | None = None
    expires: Any = None
    trail = True
    send_events = True
    abstract = True

    serializer = ConfigOption("task_serializer")
    rate_limit = ConfigOption("task_default_rate_limit")
    priority = ConfigOption("task_default_priority")
    track_started = ConfigOption("task_track_started")
    acks_late = ConfigOption("task_acks_late")
    acks_on_failure_or_timeout = ConfigOption("task_acks_on_failure_or_timeout")
    reject_on_worker_lost = ConfigOption("task_reject_on_worker_lost")
    ignore_result = ConfigOption("task_ignore_result")
    store_errors_even_if_ignored = ConfigOption("task_store_errors_even_if_ignored")
    time_limit = ConfigOption("task_time_limit")
    soft_time_limit = ConfigOption("task_soft_time_limit")

    def __init__(self) -> None:
        self._requests: list[Context] = []

    # the body --------------------------------------------------------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Tasks must define the run method.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task body directly in this process (no message, no result stored)."""
        if not self._requests_stack():
            self.push_request(args=list(args), kwargs=kwargs)
            try:
                return self.run(*args, **kwargs)
            finally:
                self.pop_request()
        return self.run(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"

    # request context --------------------------------------------------------------
    def _requests_stack(self) -> list[Context]:
        local = _state._local
        stacks = getattr(local, "requests", None)
        if stacks is None:
            stacks = local.requests = {}
        return stacks.setdefault(id(self), [])  # type: ignore[no-any-return]

    def push_request(self, *args: Any, **kwargs: Any) -> None:
        self._requests_stack().append(Context(*args, **kwargs))

    def pop_request(self) -> None:
        self._requests_stack().pop()

    @property
    def request(self) -> Context:
        stack = self._requests_stack()
        return stack[-1] if stack else Context()

    # calling ------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send the task: ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task with Celery's options (countdown, eta, expires, queue, ...).

        ``connection=`` an open psycopg connection publishes inside the caller's
        transaction: the task exists only if that transaction commits.
        """
        from celeriac.publish import call_arguments

        args, kwargs = call_arguments(self.name, args, kwargs)
        if self.typing:
            self._check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(
                args, kwargs, task_id=task_id, link=link, link_error=link_error, **options
            )
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            task_id=task_id,
            link=link,
            link_error=link_error,
            shadow=shadow,
            task_type=self,
            **{**self._default_options(), **options},
        )

    def delay_many(self, calls: Iterable[Iterable[Any]], **options: Any) -> list[AsyncResult]:
        """Send one task per argument tuple in ``calls`` with one INSERT (celeriac only).

        The bulk path: ``add.delay_many([(1, 2), (3, 4)])`` is ``[add.delay(1, 2),
        add.delay(3, 4)]`` in a single statement and round trip — all are queued or, if
        the write fails, none. ``options`` are ``apply_async`` options applied to every call.
        """
        if self.app.conf.task_always_eager:
            return [self.apply_async(args, **options) for args in calls]
        from celeriac.publish import MessageBuilder, Publisher, is_durable, split_fields

        connection = options.pop("connection", None)
        mode = options.pop("delivery_mode", self.app.conf.task_default_delivery_mode)
        durable = is_durable(mode)
        merged = {**self._default_options(), **options}
        arguments = [list(args) for args in calls]
        if self.typing:
            for args in {len(args): args for args in arguments}.values():
                self._check_arguments(args, {})
        publisher = Publisher(self.app)
        builder = MessageBuilder(self.app)
        batch = None
        if not publisher.wants_messages():
            batch = builder.build_batch(self.name, arguments, options=merged, task_type=self)
        if batch is not None:
            publisher.publish_batch(batch, connection, durable)
            task_ids = batch.task_ids
        else:
            fields, rest = split_fields(merged)
            messages = [
                builder.build(self.name, args, {}, options=rest, task_type=self, **fields)
                for args in arguments
            ]
            publisher.publish(messages, connection, durable=durable)
            task_ids = [m.task_id for m in messages]
        ignored = bool(self.ignore_result or options.get("ignore_result"))
        return [self.AsyncResult(task_id, ignored=ignored) for task_id in task_ids]

    def _default_options(self) -> dict[str, Any]:
        defaults = {
            "queue": self.queue,
            "priority": self.priority,
            "expires": self.expires,
            "serializer": self.serializer,
        }
        return {key: value for key, value in defaults.items() if value is not None}

    def _check_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        sig = self._call_signature()
        if sig is None:
            return
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}() {exc}") from None

    def _call_signature(self) -> inspect.Signature | None:
        """The body's signature without ``self`` of a bound task (computed once)."""
        if "_call_sig" in self.__dict__:
            cached: inspect.Signature | None = self.__dict__["_call_sig"]
            return cached
        fun = getattr(self, "__wrapped__", None) or self.run
        try:
            sig: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            params = list(sig.parameters.values())
            if getattr(self, "_bound", False) and params:
                params = params[1:]
            sig = sig.replace(parameters=params)
        self.__dict__["_call_sig"] = sig
        return sig

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        link: Any = None,
        link_error: Any = None,
        throw: bool | None = None,
        retries: int = 0,
        **options: Any,
    ) -> EagerResult:
        """Run the task here and now; return an EagerResult (``task_always_eager``)."""
        from celeriac.worker.eager import run_eager

        return run_eager(
            self,
            list(args or ()),
            dict(kwargs or {}),
            task_id or str(uuid.uuid4()),
            link,
            link_error,
            throw,
            retries,
            options,
        )

    # retrying ------------------------------------------------------------------------
    def retry(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: dt.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Retry the task later (Celery's semantics); always ``raise self.retry(...)``."""
        request = self.request
        retries = request.retries + 1
        limit = self.max_retries if max_retries is None else max_retries
        if request.called_directly:
            raise exc or Retry("Task can be retried", None)
        if limit is not None and retries > limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}",
                task_args=request.args,
                task_kwargs=request.kwargs,
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        when: Any = eta if eta is not None else (countdown or 0)
        sig = self.signature(
            list(request.args) if args is None else list(args),
            dict(request.kwargs) if kwargs is None else dict(kwargs),
            {**options, "countdown": countdown, "eta": eta},
        )
        current = sys.exc_info()[1]
        if exc is None and current is not None and not isinstance(current, Retry):
            exc = current  # what the RETRY state shows; not a reason to re-raise at the limit
        ret = Retry(exc=exc, when=when, sig=sig, is_eager=bool(request.is_eager))
        if throw:
            raise ret
        from celeriac import task_sends

        if task_sends.in_worker(request):  # sent with this run's outcome; the run goes on
            task_sends.send_retry(self, ret)
        return ret

    def backoff_countdown(self, retries: int) -> float:
        """The countdown autoretry uses after ``retries`` retries: Celery's rule.

        ``min(retry_backoff_max, factor * 2**retries)`` with ``factor =
        int(max(1, retry_backoff))`` (True is 1), then full jitter —
        ``random.randrange(countdown + 1)`` — when ``retry_jitter`` (the default).
        """
        factor = int(max(1.0, float(self.retry_backoff)))
        countdown = int(min(float(self.retry_backoff_max), factor * (2**retries)))
        if self.retry_jitter:
            countdown = random.randrange(countdown + 1)
        return float(max(0, countdown))

    # results -------------------------------------------------------------------------
    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **kwargs: Any
    ) -> None:
        """Store a custom state (e.g. PROGRESS with ``meta={'percent': 40}``)."""
        task_id = task_id or self.request.id
        if task_id is None:
            raise ValueError("update_state needs a task id outside a running task")
        self.app.backend.store_state(
            task_id,
            state or states.PENDING,
            meta,
            name=self.name,
            worker=self.request.hostname,
        )

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

    # signatures ----------------------------------------------------------------------
    def signature(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        **starkwargs: Any,
    ) -> Signature:
        return Signature(self, args, kwargs, options, app=self.app, **starkwargs)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature with these arguments (``add.s(2, 2)``)."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: ignores the parent's result."""
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> Any:
        from celeriac import canvas_maps

        return canvas_maps.xmap(self.s(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> Any:
        from celeriac import canvas_maps

        return canvas_maps.xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> Any:
        from celeriac import canvas_maps

        return canvas_maps.chunks(self.s(), it, n, app=self.app)

    # handlers (override in a base class) ----------------------------------------------
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Run in the worker before the task body."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Run in the worker after the task succeeded."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Run in the worker after the task failed."""

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Run in the worker when the task is to be retried."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Run in the worker after the task returned, whatever its state."""

    def replace(self, sig: Any) -> Any:
        """Replace this task with ``sig``, which inherits its id, callbacks, errbacks, the
        rest of its chain and its chord membership; raises ``Ignore`` (Celery 4+).

        ``return self.replace(sig)``: eagerly it returns the replacement's result.
        """
        from celeriac import task_sends

        return task_sends.replace(self, sig)

    def on_replace(self, sig: Any) -> Any:
        """Handler called by ``replace()`` with the replacing signature; an override
        must ``return super().on_replace(sig)``, which sends it and raises ``Ignore``."""
        from celeriac import task_sends

        return task_sends.send_replacement(self, sig)

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Add ``sig`` to the chord this task is part of: its result joins the body's
        list (after the header's). ``lazy``: return the signature; you send it."""
        from celeriac.chord_add import add_to_chord

        return add_to_chord(self, sig, lazy)

    def send_event(self, type_: str, **fields: Any) -> None:
        """Record a custom event for this task (``uuid`` = the running task's id) that
        monitors and ``celeriac events`` see, e.g. ``self.send_event('task-progress',
        current=3, total=10)``. Celery's ``retry``/``retry_policy`` are accepted and unused."""
        from celeriac.events import send_event

        fields.pop("retry", None)
        fields.pop("retry_policy", None)
        request = self.request
        send_event(self.app, type_, request.id, request.hostname, **fields)


class ExceptionInfo:
    """Celery's ``einfo``: the exception, its type and the formatted traceback."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = exc.__traceback__
        self.traceback = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))

    def __str__(self) -> str:
        return self.traceback


__all__ = ["Context", "ExceptionInfo", "Ignore", "Reject", "Retry", "Task"]
