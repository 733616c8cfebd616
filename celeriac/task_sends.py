"""What a running task sends that is written with its own outcome.

Celery's ``retry(throw=False)`` publishes the retry and lets the task go on;
``replace(sig)`` publishes the replacement and ends the task with ``Ignore``. In a
celeriac worker both are *planned* here, kept on the request, and inserted by the
worker in the transaction that records the task's outcome — the retry or replacement
exists if and only if the task's end is recorded, even if the worker dies in between
(the job is then rescued and runs again, planning them again).

* ``retry(throw=False)``: a new message for the same task id with ``retries + 1``, the
  same callbacks, errbacks, chain, chord membership and routing (Celery's
  ``signature_from_request``). This run ends as it ends — SUCCESS with its return value
  or FAILURE — and the retry runs later under the same id (Celery's documented rule).
* ``replace(sig)``: ``sig`` takes over the task's id, its callbacks and errbacks, the
  rest of its chain and its chord membership (Celery 5's ``Task.replace``); a group is
  first upgraded to a chord whose body (``celery.accumulate``) returns the group's
  results as a list. The replaced run itself stores nothing and does not count for its
  chord: the replacement's last task, which has the same id, does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Plan, Planner
from celeriac.exceptions import Ignore, ImproperlyConfigured, Retry
from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.task import Context, Task

# where the plan waits on the request (a Context attribute Celery doesn't have)
_SENT = "celeriac_sent"
_REPLACED = "celeriac_replaced"
# a finished job's status (never stored) telling the finish statement: not a chord part
REPLACED = "REPLACED"


def in_worker(request: Context) -> bool:
    """Is this request a job a celeriac worker claimed (not eager, not a direct call)?"""
    return request.get("job_id") is not None and not request.is_eager


def defer(request: Context, plan: Plan) -> None:
    """Keep ``plan`` to be written with this task's outcome."""
    sent: Plan = request.__dict__.setdefault(_SENT, Plan())
    sent.messages += plan.messages
    sent.chords += plan.chords


def deferred(request: Context) -> Plan | None:
    """What the task planned to send with its outcome (None: nothing)."""
    plan: Plan | None = request.get(_SENT)
    return plan if plan else None


def was_replaced(request: Context) -> bool:
    """Did the task end by ``replace()`` (its chord membership moved to the replacement)?"""
    return bool(request.get(_REPLACED))


def attach(request: Context, outcome: Any) -> None:
    """Add what the task planned to its ``finish`` outcome (a worker's Outcome); a
    replaced task ends REPLACED: not stored, not counted for its chord."""
    plan = deferred(request)
    if plan is None or outcome.kind != "finish":
        return
    outcome.publish = [*outcome.publish, *plan.messages]
    outcome.chords = [*outcome.chords, *plan.chords]
    if was_replaced(request) and outcome.status == states.IGNORED:
        outcome.status = REPLACED


# -- retry(throw=False) --------------------------------------------------------------------
def send_retry(task: Task, retry: Retry) -> None:
    """Plan the retry message of ``retry(throw=False)`` for this worker's request."""
    request = task.request
    plan = Plan(messages=[retry_message(task, retry)])
    defer(request, plan)


def retry_message(task: Task, retry: Retry) -> Message:
    """The retry as a message: the same id, one more retry, what the request carried."""
    request = task.request
    assert retry.sig is not None
    options = dict(retry.sig.options)
    headers = {**(request.headers or {}), **(options.pop("headers", None) or {})}
    delivery = request.delivery_info or {}
    options.setdefault("queue", delivery.get("routing_key"))
    options.setdefault("priority", delivery.get("priority"))
    options.setdefault("ignore_result", bool(headers.get("ignore_result")))
    hard, soft = request.timelimit or (None, None)
    countdown, eta = options.pop("countdown", None), options.pop("eta", None)
    time_limit = options.pop("time_limit", hard)
    soft_time_limit = options.pop("soft_time_limit", soft)
    return task.app.build_message(
        task.name,
        retry.sig.args,
        retry.sig.kwargs,
        options={**options, "headers": headers},
        task_type=task,
        task_id=request.id,
        retries=request.retries + 1,
        countdown=countdown,
        eta=eta,
        expires=request.expires,
        link=request.callbacks,
        link_error=request.errbacks,
        chain=request.chain,
        chord=request.chord,
        group_id=request.group,
        group_index=request.group_index,
        root_id=request.root_id,
        parent_id=request.parent_id,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        shadow=request.shadow,
    )


# -- replace(sig) ----------------------------------------------------------------------------
def replace(task: Task, sig: Any) -> Any:
    """Celery's ``Task.replace``: ``sig`` takes over this task's id and place; raises
    ``Ignore`` (eagerly: returns the replacement's result)."""
    signature = maybe_signature(sig, app=task.app)
    if signature is None:
        raise TypeError(f"replace() takes a signature, not {type(sig).__name__}")
    if "chord" in signature.options:
        raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
    if signature.subtask_type == "chain" and not signature["kwargs"].get("tasks"):
        raise ImproperlyConfigured("Cannot replace with an empty chain")
    return task.on_replace(signature.clone())


def send_replacement(task: Task, sig: Signature) -> Any:
    """``Task.on_replace``'s default: eagerly run ``sig`` and return its result; in a
    worker keep its plan for the outcome; raise ``Ignore``."""
    request = task.request
    if request.is_eager:
        return sig.apply().get()
    plan = replacement(task, sig)
    if in_worker(request):
        defer(request, plan)
        request.__dict__[_REPLACED] = True
    else:  # called directly: publish now, as Celery's sig.delay()
        task.app.publish(plan.messages, chords=plan.chords)
    raise Ignore("Replaced by new task")


def replacement(task: Task, sig: Signature) -> Plan:
    """The plan of ``sig`` standing in for the running task."""
    request = task.request
    app = task.app
    if sig.subtask_type == "group":
        from celeriac.canvas_chord import chord

        sig = chord(sig, app.signature("celery.accumulate", kwargs={"index": 0}), app=app)
    for callback in _listed(request.callbacks, app):
        sig.link(callback)
    for errback in _listed(request.errbacks, app):
        sig.link_error(errback)
    nesting = int(request.get("replaced_task_nesting") or 0) + 1
    headers = {**(sig.options.get("headers") or {}), "replaced_task_nesting": nesting}
    options: dict[str, Any] = {"task_id": request.id, "headers": headers}
    for key, value in (
        ("chain", request.chain),
        ("chord", request.chord),
        ("group_id", request.group),
        ("group_index", request.group_index),
    ):
        if value is not None:
            options[key] = value
    planner = Planner(app, parent_id=request.parent_id, root_id=request.root_id or request.id)
    planner.add(sig, (), {}, options)
    return planner.plan


def _listed(value: Any, app: Any) -> list[Signature]:
    items = value if isinstance(value, list | tuple) else [value] if value else []
    return [sig for sig in (maybe_signature(item, app=app) for item in items) if sig is not None]


__all__ = [
    "REPLACED",
    "attach",
    "defer",
    "deferred",
    "in_worker",
    "replace",
    "replacement",
    "retry_message",
    "send_replacement",
    "send_retry",
    "was_replaced",
]
