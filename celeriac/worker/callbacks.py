"""What a finished task sends on: ``link`` callbacks after success, ``link_error``
errbacks after failure — with Celery's argument rules.

* A callback is published with the parent's return value prepended (unless immutable),
  with parent_id and root_id set, also when the parent ignores its result.
* An errback is *new style* — called here, in the process that ran the failing task, as
  ``errback(request, exc, traceback_text)`` — when its task is a decorated function that
  is not ``bind=True`` and takes more than one positional argument (or ``*args``) beyond
  the signature's own; otherwise it is *old style* and published with the failed task's
  id prepended. An exception in an errback is logged and changes nothing.

The plans returned here (messages, chords started, final states of the rest of a failed
chain) are written by the completer in the same transaction that records the parent's
outcome.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Plan, Planner, final_states
from celeriac.message import FinalState

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Context

logger = logging.getLogger(__name__)


def _sigs(app: Celery, value: Any) -> list[Signature]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [sig for sig in (maybe_signature(item, app=app) for item in items) if sig is not None]


def on_success(app: Celery, request: Context, retval: Any) -> Plan:
    """What a successful task sends on: its callbacks (``link``) and the next step of its
    chain, each with the return value prepended (unless immutable)."""
    if not request.callbacks and not request.chain:
        return Plan()  # most jobs: nothing to send on
    planner = Planner(app, parent_id=request.id, root_id=request.root_id or request.id)
    for sig in _sigs(app, request.callbacks):
        planner.add(sig, [retval])
    if request.chain:
        rest = list(request.chain)
        step = rest.pop()  # the chain is stored reversed: the next step is last
        planner.add(step, [retval], None, {"chain": rest} if rest else None)
    return planner.plan


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


def on_failure(app: Celery, request: Context, exc: BaseException, traceback: str | None) -> Plan:
    """Call new-style errbacks now; plan old-style ones, and mark the rest of the chain
    FAILURE with the same exception (Celery's ``SUCCESS, FAILURE, FAILURE``)."""
    planner = Planner(app, parent_id=request.id, root_id=request.root_id or request.id)
    for sig in _sigs(app, request.errbacks):
        if is_new_style(app, sig):
            call_errback(app, sig, request, exc, traceback)
        else:
            planner.add(sig, [request.id])
    planner.plan.marks = rest_of_chain(app, request.chain, states.FAILURE, exc, traceback)
    return planner.plan


def rest_of_chain(
    app: Celery, chain: Any, status: str, exc: BaseException, traceback: str | None
) -> list[FinalState]:
    """Final states for the steps of a chain that will never run."""
    if not chain:
        return []
    backend = app.backend
    encoded = backend.encode(exc)
    return final_states(
        reversed(list(chain)), status, backend.content_type, encoded, traceback, app
    )


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


__all__ = ["call_errback", "is_new_style", "on_failure", "on_success", "rest_of_chain"]
