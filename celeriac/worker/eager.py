"""``apply()`` and ``task_always_eager``: run a task in this process, nothing stored.

The body runs through the executor's ``run_body`` so retries, autoretry and handlers
behave as in a worker; callbacks are applied eagerly in turn.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import _state, serialization, states
from celeriac.canvas import maybe_signature
from celeriac.task import Context, ExceptionInfo
from celeriac.worker.executor import run_body

if TYPE_CHECKING:
    from celeriac.result import EagerResult
    from celeriac.task import Task

logger = logging.getLogger(__name__)


def run_eager(
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    task_id: str,
    link: Any,
    link_error: Any,
    throw: bool | None,
    retries: int,
    options: dict[str, Any],
) -> EagerResult:
    """Run ``task`` now and return an EagerResult (Celery's ``Task.apply``).

    A retry runs again at once, in this process, with ``request.retries`` one higher
    (Celery's eager retry): the result is the last attempt's.
    """
    # round-trip through the serializer, as Celery does, so eager mode catches bad arguments
    content_type = serialization.content_type_of(options.get("serializer") or task.serializer)
    args, kwargs = serialization.loads(
        serialization.dumps([args, kwargs], content_type), content_type, {content_type}
    )
    while True:
        request = _request(task, args, kwargs, task_id, retries, link, link_error, options)
        ran = _run_once(task, request, args, kwargs)
        retry = ran.retry if ran.state == states.RETRY else None
        if retry is None or retry.sig is None:
            break
        task.on_retry(retry.exc or retry, task_id, args, kwargs, ExceptionInfo(retry))
        args, kwargs, retries = list(retry.sig.args), dict(retry.sig.kwargs), retries + 1
    return _eager_result(task, request, ran, throw)


def _request(
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    task_id: str,
    retries: int,
    link: Any,
    link_error: Any,
    options: dict[str, Any],
) -> Context:
    parent = _state.current_task()
    headers = options.get("headers") or {}
    return Context(
        {key: value for key, value in headers.items() if key.isidentifier()},
        id=task_id,
        task=task.name,
        args=args,
        kwargs=kwargs,
        retries=retries,
        is_eager=True,
        called_directly=False,
        hostname="eager",
        delivery_info={"is_eager": True},
        root_id=(parent.request.root_id or parent.request.id) if parent else task_id,
        parent_id=parent.request.id if parent else None,
        timelimit=(options.get("time_limit"), options.get("soft_time_limit")),
        callbacks=link,
        errbacks=link_error,
        headers=headers,
        ignore_result=bool(options.get("ignore_result", False)),
    )


def _run_once(task: Task, request: Context, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # this request itself, as Celery's trace does: a task that sets
    # ``self.request.callbacks = None`` sends no link on (celery/celery#3550)
    task._requests_stack().append(request)
    _state.push_task(task)
    try:
        return run_body(task, args, kwargs, (None, None), _no_guard)
    finally:
        _state.pop_task()
        task.pop_request()


def _eager_result(task: Task, request: Context, ran: Any, throw: bool | None) -> EagerResult:
    from celeriac.result import EagerResult

    app, task_id = task.app, str(request.id)
    args, kwargs = request.args, request.kwargs
    propagate = app.conf.task_eager_propagates if throw is None else throw
    _store(task, request, ran)
    if ran.state == states.FAILURE:
        assert ran.exc is not None and ran.einfo is not None
        task.on_failure(ran.exc, task_id, args, kwargs, ran.einfo)
        for sig in _list(request.errbacks):
            _call_eager_errback(app, sig, request, ran.exc, ran.einfo.traceback)
        if propagate:
            raise ran.exc
        return EagerResult(task_id, ran.exc, states.FAILURE, ran.einfo.traceback, task.name, app)
    if ran.state == states.RETRY:  # retry(throw=...) without a signature to run
        return EagerResult(task_id, ran.retry, states.RETRY, name=task.name, app=app)
    if ran.state == states.SUCCESS:
        task.on_success(ran.retval, task_id, args, kwargs)
        for sig in _list(request.callbacks):
            signature = maybe_signature(sig, app=app)
            if signature is not None:
                signature.apply_async((ran.retval,))
    return EagerResult(task_id, ran.retval, ran.state, name=task.name, app=app)


def _store(task: Task, request: Context, ran: Any) -> None:
    """``task_store_eager_result``: record the outcome as a worker would (Celery 5.1+)."""
    if not task.app.conf.task_store_eager_result or request.ignore_result or task.ignore_result:
        return
    if ran.state not in (states.SUCCESS, states.FAILURE):
        return
    value = ran.retval if ran.state == states.SUCCESS else ran.exc
    traceback = ran.einfo.traceback if ran.einfo is not None else None
    task.app.backend.store_state(
        str(request.id), ran.state, value, traceback=traceback, name=task.name, worker="eager"
    )


def _list(value: Any) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _call_eager_errback(
    app: Any, sig: Any, request: Context, exc: BaseException, traceback: str
) -> None:
    from celeriac.worker import callbacks

    signature = maybe_signature(sig, app=app)
    if signature is None:
        return
    if callbacks.is_new_style(app, signature):
        callbacks.call_errback(app, signature, request, exc, traceback)
    else:
        signature.apply_async((request.id,))


def _no_guard(soft: float | None, hard: float | None) -> Any:
    from contextlib import nullcontext

    return nullcontext()
