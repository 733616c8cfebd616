"""Calling a task's body and classifying how it ended (no storage, no handlers).

Shared by the worker's executor and by ``apply()`` / ``task_always_eager``: the body
runs under the pool's ``guard`` (time limits), an ``async def`` task on its own event
loop, and Retry / Ignore / Reject / autoretry_for are told apart here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from celeriac import states
from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.message import Job
from celeriac.task import ExceptionInfo, Task

logger = logging.getLogger("celeriac.worker.executor")

Guard = Callable[[float | None, float | None], AbstractContextManager[Any]]


@dataclass(slots=True)
class RunResult:
    """How the task body ended, before anything is stored."""

    state: str
    retval: Any = None
    exc: BaseException | None = None
    einfo: ExceptionInfo | None = None
    retry: Retry | None = None
    requeue: bool = False


def run_body(
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    limits: tuple[float | None, float | None],
    guard: Guard,
) -> RunResult:
    """Call the task body under the pool's limits and classify how it ended."""
    hard, soft = limits
    try:
        with guard(soft, hard):
            retval = task.run(*args, **kwargs)
            if inspect.isawaitable(retval):
                retval = asyncio.run(_await(retval))
    except Retry as exc:
        return RunResult(states.RETRY, exc=exc, retry=exc)
    except Ignore as exc:
        return RunResult(states.IGNORED, exc=exc)
    except Reject as exc:
        return RunResult(states.REJECTED, exc=exc, requeue=exc.requeue)
    except Exception as exc:
        return _failure_or_autoretry(task, exc)
    return RunResult(states.SUCCESS, retval=retval)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _failure_or_autoretry(task: Task, exc: Exception) -> RunResult:
    if (
        task.autoretry_for
        and isinstance(exc, tuple(task.autoretry_for))
        and not isinstance(exc, tuple(task.dont_autoretry_for))
    ):
        options = dict(task.retry_kwargs)
        if task.retry_backoff:
            options["countdown"] = task.backoff_countdown(task.request.retries)
        try:
            task.retry(exc=exc, **options)
        except Retry as retry:
            return RunResult(states.RETRY, exc=retry, retry=retry)
        except Exception as final:
            exc = final if isinstance(final, Exception) else exc
    if isinstance(exc, tuple(task.throws)):
        logger.info("Task %s[%s] raised expected: %r", task.name, task.request.id, exc)
    return RunResult(states.FAILURE, exc=exc, einfo=ExceptionInfo(exc))


def retry_target(task: Task, retry: Retry, job: Job) -> tuple[dt.datetime | None, bytes | None]:
    """When the retry runs, and its new body when args or kwargs changed."""
    when = retry.when
    eta = None
    if isinstance(when, dt.datetime):
        eta = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    elif when:
        eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(when))
    body = None
    if retry.sig is not None:
        from celeriac.message import encode_body

        request = task.request
        if list(retry.sig.args) != list(request.args) or dict(retry.sig.kwargs) != dict(
            request.kwargs
        ):
            embed = {
                "callbacks": request.callbacks,
                "errbacks": request.errbacks,
                "chain": request.chain,
                "chord": request.chord,
            }
            body = encode_body(retry.sig.args, retry.sig.kwargs, embed, job.content_type)
    return eta, body


__all__ = ["Guard", "RunResult", "retry_target", "run_body"]
