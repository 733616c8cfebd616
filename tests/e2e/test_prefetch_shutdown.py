"""A worker busy with short jobs holds a prefetch buffer; stopping it loses nothing."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _states(app: Any) -> dict[str, int]:
    with app.database.connection() as conn:
        rows = conn.execute(
            f'SELECT state, count(*) FROM "{app.database.schema}".jobs GROUP BY state'
        ).fetchall()
    return dict(rows)


def _done(app: Any) -> int:
    with app.database.connection() as conn:
        row = conn.execute(f'SELECT count(*) FROM "{app.database.schema}".results').fetchone()
    return int(row[0])


def _wait_done(app: Any, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _done(app) < count:
        assert time.monotonic() < deadline, f"only {_done(app)} of {count} done"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_a_prefetching_worker_loses_and_fails_nothing_unstarted(
    proj_app: Any, start_worker: Any, signum: int
) -> None:
    add = proj_app.tasks["proj.add"]
    results = add.delay_many([(i, i) for i in range(1000)])
    worker = start_worker("-c", "2", "--prefetch-multiplier", "8")
    _wait_done(proj_app, 100)  # short jobs seen: the worker claims ahead now
    if signum == signal.SIGKILL:
        worker.kill()  # the whole worker: its process and its pool children
    else:
        worker.signal(signum)
    worker.wait(30)
    if signum == signal.SIGTERM:  # warm: the buffer was given back at once
        assert "running" not in _states(proj_app)
    start_worker("-c", "2", "--prefetch-multiplier", "1")
    _wait_done(proj_app, len(results), timeout=90)
    failed = [r for r in results if r.state != "SUCCESS"]
    # a kill may cut the two jobs that were running (early ack: WorkerLostError), never
    # the prefetched ones that had not started
    assert len(failed) <= (0 if signum == signal.SIGTERM else 2), [r.state for r in failed]
