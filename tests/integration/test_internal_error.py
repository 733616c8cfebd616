"""An error in celeriac around a task (here: its on_success handler) sends
task_internal_error with Celery's arguments and stores FAILURE."""

from __future__ import annotations

from typing import Any

from celeriac import Task, signals, states
from celeriac.worker.executor import Execution


class Fragile(Task):
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        raise RuntimeError("handler exploded")


def test_internal_error_signal(app: Any) -> None:
    @app.task(name="t.fragile", base=Fragile)
    def fragile() -> int:
        return 1

    fragile.delay()
    with app.database.connection() as conn:
        (job,) = app.broker.claim(conn, "celery", 1, 0)
    seen: list[dict[str, Any]] = []

    def handler(sender: Any = None, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.task_internal_error.connect(handler)
    try:
        outcome = Execution(app, job, "me@host").run_safely()
    finally:
        signals.task_internal_error.disconnect(handler)
    assert outcome.status == states.FAILURE
    assert len(seen) == 1
    keys = {"task_id", "args", "kwargs", "request", "exception", "traceback", "einfo"}
    assert keys <= set(seen[0])
    assert isinstance(seen[0]["exception"], RuntimeError)
