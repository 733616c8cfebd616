"""``Task.add_to_chord(sig)``: one more header task for the running task's chord.

Celery supports this on the Redis backend only (an atomic counter); here the chord's
row gets the new task id appended and its counter raised, and the new task's message
is published, in one transaction. That runs while the calling header task has not
ended — it still counts — so the chord cannot join in between. The new task's result
comes last in the list the body receives (Celery orders by ``group_index``, which the
new task shares with the caller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Planner
from celeriac.db.queries import query

if TYPE_CHECKING:
    from celeriac.task import Task


def add_to_chord(task: Task, sig: Any, lazy: bool = False) -> Any:
    """Add ``sig`` (a task or a chain) to the chord ``task`` is part of; return its
    AsyncResult, or with ``lazy`` the signature, which you must send yourself."""
    request = task.request
    if not request.chord or not request.group:
        raise ValueError("Current task is not member of any chord")
    signature = _member(task, sig)
    result = signature.freeze(
        group_id=request.group,
        chord=request.chord,
        root_id=request.root_id or request.id,
        group_index=request.group_index,
    )
    signature.set(group_id=request.group, group_index=request.group_index, chord=request.chord)
    app, db = task.app, task.app.database
    with db.connection() as conn:
        row = conn.execute(
            query("add_to_chord", db.schema), {"group_id": request.group, "task_id": result.id}
        ).fetchone()
        if row is None:
            raise ValueError(f"chord {request.group} has already joined or expired")
        if lazy:
            return signature
        planner = Planner(app, parent_id=request.id, root_id=request.root_id or request.id)
        planner.add(signature)
        app.broker.publish(planner.plan.messages, conn=conn, chords=planner.plan.chords)
        if app.conf.task_send_sent_event:
            from celeriac.events import record_sent

            record_sent(app, planner.plan.messages, conn)
    return result


def _member(task: Task, sig: Any) -> Signature:
    signature = maybe_signature(sig, app=task.app)
    if signature is None or signature.subtask_type in ("group", "chord"):
        raise TypeError("add_to_chord() takes a task signature or a chain")
    return signature.clone()


__all__ = ["add_to_chord"]
