"""What a worker takes and when: queues, routes, priorities, eta, expiry, revocation,
rate limits; and what it reports while a task runs (STARTED, PROGRESS)."""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import TaskRevokedError
from tests.e2e.faultkit import job_rows, lines, wait_lines, wait_until

pytestmark = pytest.mark.e2e


def test_queues_option(tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str) -> None:
    order = tmp_path / "order"
    fworker("-c", "2", "-Q", "alpha,beta")
    alpha = tasks.record.apply_async((str(order), "alpha"), queue="alpha")
    beta = tasks.record.apply_async((str(order), "beta"), queue="beta")
    other = tasks.record.apply_async((str(order), "default"))
    assert (alpha.get(timeout=10), beta.get(timeout=10)) == ("alpha", "beta")
    assert other.state == states.PENDING
    assert [r["state"] for r in job_rows(dsn, schema)] == ["queued"]


def test_task_routes(
    tasks: Any, proj_app: Any, fworker: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    order = tmp_path / "order"
    monkeypatch.setitem(proj_app.conf, "task_routes", {"faults_tasks.record": {"queue": "routed"}})
    fworker("-c", "1", "-n", "default@%h")
    routed = tasks.record.delay(str(order), "routed")
    assert tasks.whoami.delay().get(timeout=10)  # the default-queue worker is busy-free...
    assert routed.state == states.PENDING  # ...and did not take the routed task
    fworker("-c", "1", "-Q", "routed", "-n", "routed@%h")
    assert routed.get(timeout=10) == "routed"


def test_higher_priority_runs_first(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    marker, gate, order = tmp_path / "started", tmp_path / "gate", tmp_path / "order"
    fworker("-c", "1")
    blocker = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    for tag, priority in [("low", 1), ("zero", None), ("high", 9), ("mid", 5), ("top", 255)]:
        tasks.record.apply_async((str(order), tag), priority=priority)
    gate.touch()
    blocker.get(timeout=10)
    assert wait_lines(order, 5) == ["top", "high", "mid", "low", "zero"]


def test_countdown_is_kept_in_the_database(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    order = tmp_path / "order"
    first = fworker("-c", "1", "-n", "first@%h")
    sent = dt.datetime.now(dt.UTC)
    result = tasks.record.apply_async((str(order), "later"), countdown=3)
    assert tasks.whoami.delay().get(timeout=10)  # the worker is up and claiming
    first.signal(signal.SIGTERM)  # ...and goes away before the eta
    assert first.wait(20) == 0
    assert [r["state"] for r in job_rows(dsn, schema)] == ["queued"]
    assert not order.exists()
    fworker("-c", "1", "-n", "second@%h")
    assert result.get(timeout=15) == "later"
    assert result.date_done - sent >= dt.timedelta(seconds=3)


def test_expired_task_is_revoked_without_running(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    order = tmp_path / "order"
    result = tasks.record.apply_async((str(order), "stale"), expires=0.5)
    expiry = time.monotonic() + 0.5
    wait_until(lambda: time.monotonic() > expiry, 5, "the expiry")  # the expiry IS the test
    fworker("-c", "1")
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    assert result.state == states.REVOKED
    assert not order.exists()


def test_revoked_ids_never_run(tasks: Any, proj_app: Any, fworker: Any, tmp_path: Path) -> None:
    order = tmp_path / "order"
    waiting = tasks.record.delay(str(order), "waiting")
    proj_app.control.revoke(waiting.id)
    assert waiting.state == states.REVOKED  # at once, no worker needed
    # revoked before it was even sent: a worker started later still refuses it
    proj_app.control.revoke("revoked-in-advance")
    early = tasks.record.apply_async((str(order), "early"), task_id="revoked-in-advance")
    fworker("-c", "1")
    with pytest.raises(TaskRevokedError):
        early.get(timeout=10)
    assert tasks.record.delay(str(order), "normal").get(timeout=10) == "normal"
    assert lines(order) == ["normal"]


def test_revoke_reaches_a_job_queued_in_a_pool_process(
    tasks: Any, proj_app: Any, fworker: Any, tmp_path: Path
) -> None:
    """Short jobs wait in a prefork process behind the one it runs (worker/prefork.py):
    ``inspect reserved`` lists such a job with that process's pid, and a revoke without
    terminate refuses it when it gets to the front."""
    marker, gate, order = (tmp_path / n for n in ("started", "gate", "order"))
    fworker("-c", "1")
    # the worker learns the task is short (tens of us, no I/O): its jobs may then queue
    # behind one another in a pool process, up to 5 ms of expected work
    for _ in range(30):
        tasks.block.delay(seconds=0).get(timeout=10)
    blocker = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    queued = tasks.block.delay(str(order), None, 0)  # would write its pid to ``order``

    def held() -> dict[str, Any] | None:
        replies = proj_app.control.inspect().reserved() or {}
        return next((i for r in replies.values() for i in r if i["id"] == queued.id), None)

    info = wait_until(held, 10, "the job in reserved")
    assert info["worker_pid"] is not None  # in the pool process, not the worker's buffer
    assert proj_app.control.inspect().query_task(queued.id)
    proj_app.control.revoke(queued.id, reply=True)  # replied: the worker passed it on
    gate.touch()
    assert blocker.get(timeout=10) == info["worker_pid"]
    with pytest.raises(TaskRevokedError):
        queued.get(timeout=10)
    assert queued.state == states.REVOKED
    assert tasks.record.delay(str(order), "after").get(timeout=10) == "after"
    assert lines(order) == ["after"]


def test_rate_limit_per_worker(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    fworker("-c", "4")
    results = [tasks.rated.delay(str(stamps)) for _ in range(6)]
    for result in results:
        result.get(timeout=20)
    times = sorted(float(t) for t in lines(stamps))
    # 4/s with a burst of one: six runs span at least ~1.25 s (generous bound: 1.0)
    assert times[-1] - times[0] >= 1.0, times


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_async_def_task(pool: str, tasks: Any, fworker: Any) -> None:
    fworker("-P", pool, "-c", "2")
    assert tasks.async_add.delay(2, 3).get(timeout=10) == 5


def test_track_started(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    node = "tracker@testhost"
    fworker("-c", "1", "-n", node)
    result = tasks.tracked.delay(str(marker), str(gate))
    pid = int(wait_lines(marker, 1)[0])
    wait_until(lambda: result.state == states.STARTED, 10, "STARTED")
    assert result.info == {"pid": pid, "hostname": node}
    gate.touch()
    assert result.get(timeout=10) == "tracked"


def test_update_state_progress_visible_while_running(
    tasks: Any, fworker: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    fworker("-c", "1")
    result = tasks.progress.delay(str(gate))
    wait_until(lambda: result.state == "PROGRESS", 10, "PROGRESS")
    assert result.info == {"current": 1, "total": 2}
    assert not result.ready()
    gate.touch()
    assert result.get(timeout=10) == "complete"
