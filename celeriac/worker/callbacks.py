"""What a finished task sends on: ``link`` callbacks after success, ``link_error``
errbacks after failure — with Celery's argument rules.

* A callback is published with the parent's return value prepended (unless immutable),
  with parent_id and root_id set, also when the parent ignores its result.
* An errback is *new style* — called here, in the process that ran the failing task, as
  ``errback(request, exc, traceback_text)`` — when its task is a decorated function that
  is not ``bind=True`` and takes more than one positional argument (or ``*args``) beyond
  the signature's own; otherwise it is *old style* and published with the failed task's
  id prepended. An exception in an errback is logged and changes nothing.

The messages returned here are published by the completer in the same transaction that
records the parent's outcome.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature, maybe_signature
from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Context

logger = logging.getLogger(__name__)


def _sigs(app: Celery, value: Any) -> list[Signature]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [sig for sig in (maybe_signature(item, app=app) for item in items) if sig is not None]


def _message(app: Celery, sig: Signature, args: list[Any], request: Context) -> Message:
    new_args, new_kwargs, options = sig._merge(args, None, None)
    options = dict(options)
    task_type = app.tasks.get(sig.task)
    fields = {
        k: options.pop(k)
        for k in (
            "countdown",
            "eta",
            "expires",
            "task_id",
            "link",
            "link_error",
            "time_limit",
            "soft_time_limit",
            "group_id",
            "group_index",
            "chain",
            "chord",
        )
        if k in options
    }
    return app.build_message(
        sig.task,
        new_args,
        new_kwargs,
        options=options,
        task_type=task_type,
        parent_id=request.id,
        root_id=request.root_id or request.id,
        **fields,
    )


def on_success(app: Celery, request: Context, retval: Any) -> list[Message]:
    """Messages for the success callbacks (``link``) of a finished task."""
    return [_message(app, sig, [retval], request) for sig in _sigs(app, request.callbacks)]


def is_new_style(app: Celery, sig: Signature) -> bool:
    """Celery's rule for calling an errback in-process as ``(request, exc, traceback)``."""
    task = app.tasks.get(sig.task)
    header = getattr(task, "__header__", None)
    if task is None or header is None or getattr(task, "_bound", False):
        return False
    try:
        params = inspect.signature(header).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    stored = 0 if sig.immutable else len(sig.args)
    return len(positional) - stored > 1


def on_failure(
    app: Celery, request: Context, exc: BaseException, traceback: str | None
) -> list[Message]:
    """Call new-style errbacks now; return messages for old-style ones."""
    messages = []
    for sig in _sigs(app, request.errbacks):
        if is_new_style(app, sig):
            call_errback(app, sig, request, exc, traceback)
        else:
            messages.append(_message(app, sig, [request.id], request))
    return messages


def call_errback(
    app: Celery, sig: Signature, request: Context, exc: BaseException, traceback: str | None
) -> None:
    """Run one new-style errback; its errors are logged and swallowed."""
    try:
        task = app.tasks[sig.task]
        args = [request, exc, traceback, *sig.args]
        task(*args, **sig.kwargs)
    except Exception:
        logger.exception("Errback %r of task %s[%s] raised", sig, request.task, request.id)


__all__ = ["call_errback", "is_new_style", "on_failure", "on_success"]
