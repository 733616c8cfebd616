"""An error in celeriac around a task (not in it) sends task_internal_error and stores
FAILURE instead of crashing the pool process."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import signals, states
from celeriac.worker.executor import Execution


def test_internal_error_is_reported(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task(name="t.tracked", track_started=True)
    def tracked() -> int:
        return 1

    tracked.delay()
    with app.database.connection() as conn:
        (job,) = app.broker.claim(conn, "celery", 1, 0)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("backend exploded")

    monkeypatch.setattr(app.backend, "store_state", broken)  # storing STARTED fails
    seen: list[dict[str, Any]] = []

    def handler(sender: Any = None, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.task_internal_error.connect(handler)
    try:
        outcome = Execution(app, job, "me@host").run()
    finally:
        signals.task_internal_error.disconnect(handler)
    assert outcome.status == states.FAILURE
    assert "backend exploded" in (outcome.traceback or "")
    assert len(seen) == 1
    assert {"task_id", "args", "kwargs", "request", "exception", "traceback", "einfo"} <= set(
        seen[0]
    )
    assert isinstance(seen[0]["exception"], RuntimeError)
