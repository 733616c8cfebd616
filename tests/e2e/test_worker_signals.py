"""Process signals as Celery: TERM/INT warm, INT twice/QUIT cold, HUP restart, USR1 stacks."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import WorkerLostError
from tests.e2e.faultkit import job_rows, lines, wait_lines, wait_until

pytestmark = pytest.mark.e2e


def test_term_finishes_running_tasks_and_leaves_queued_ones(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate, order = tmp_path / "started", tmp_path / "gate", tmp_path / "order"
    worker = fworker("-c", "2")
    running = [tasks.block.delay(str(marker), str(gate)) for _ in range(2)]
    wait_lines(marker, 2)
    queued = [tasks.record.delay(str(order), str(n)) for n in range(3)]
    worker.signal(signal.SIGTERM)
    worker.wait_for_line("Warm shutdown")
    gate.touch()
    assert worker.wait(30) == 0
    assert {r.get(timeout=5) for r in running} <= {int(pid) for pid in lines(marker)}
    # nothing new was claimed after TERM: the queued tasks wait, untouched, for the next worker
    rows = job_rows(dsn, schema)
    assert [(r["state"], r["attempt"]) for r in rows] == [("queued", 0)] * 3
    assert not order.exists()
    fworker("-c", "1")
    assert [r.get(timeout=15) for r in queued] == ["0", "1", "2"]


def test_int_once_is_warm(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "1")
    result = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    worker.signal(signal.SIGINT)
    worker.wait_for_line("Hitting Ctrl+C again will initiate cold shutdown")
    gate.touch()
    assert worker.wait(30) == 0
    assert result.get(timeout=5) == int(lines(marker)[0])


def _start_three(tasks: Any, marker: Path, gate: Path) -> tuple[Any, Any, Any]:
    early = tasks.block.delay(str(marker), str(gate))
    late = tasks.late_block.delay(str(marker), str(gate))
    late_reject = tasks.late_reject_block.delay(str(marker), str(gate))
    wait_lines(marker, 3)
    return early, late, late_reject


def _assert_cold_outcome(
    early: Any, lates: list[Any], dsn: str, schema: str, marker: Path, gate: Path, fworker: Any
) -> None:
    lost = early.get(timeout=10, propagate=False)
    assert isinstance(lost, WorkerLostError), lost
    assert "cold shutdown" in str(lost)
    assert early.state == states.FAILURE
    # acks_late jobs are back in the queue — none left running or STARTED
    rows = job_rows(dsn, schema)
    assert sorted(r["state"] for r in rows) == ["queued"] * len(lates)
    assert all(r.state == states.PENDING for r in lates)
    before = len(lines(marker))
    gate.touch()
    fworker("-c", "2", "-n", "next@%h")
    assert all(isinstance(r.get(timeout=20), int) for r in lates)
    assert len(lines(marker)) == before + len(lates)  # each acks_late task ran again


def test_quit_is_cold_shutdown(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "3")
    early, late, late_reject = _start_three(tasks, marker, gate)
    worker.signal(signal.SIGQUIT)
    assert worker.wait(20) == 1
    assert "Cold shutdown" in worker.log
    _assert_cold_outcome(early, [late, late_reject], dsn, schema, marker, gate, fworker)


def test_int_twice_is_cold_shutdown(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "3")
    early, late, late_reject = _start_three(tasks, marker, gate)
    worker.signal(signal.SIGINT)
    worker.wait_for_line("Hitting Ctrl+C again")
    worker.signal(signal.SIGINT)
    assert worker.wait(20) == 1
    _assert_cold_outcome(early, [late, late_reject], dsn, schema, marker, gate, fworker)


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_quit_is_cold_in_other_pools(
    pool: str, tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-P", pool, "-c", "2")
    late = tasks.late_block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    early = None
    if pool == "threads":
        early = tasks.block.delay(str(marker), str(gate))
        wait_lines(marker, 2)
    worker.signal(signal.SIGQUIT)
    assert worker.wait(20) == 1
    if early is not None:
        assert isinstance(early.get(timeout=10, propagate=False), WorkerLostError)
    assert [r["state"] for r in job_rows(dsn, schema)] == ["queued"]
    gate.touch()
    fworker("-P", pool, "-n", "next@%h")
    assert isinstance(late.get(timeout=20), int)


def test_hup_restarts_in_place_and_loses_nothing(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "1")
    running = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    queued = tasks.whoami.delay()
    worker.signal(signal.SIGHUP)
    restart = worker.wait_for_line("restarting in place once running tasks finish")
    gate.touch()
    worker.wait_for_line(" ready.", start=restart)
    assert worker.proc.poll() is None  # the same process, exec'd: never exited
    assert running.get(timeout=10) == int(lines(marker)[0])
    new_child = queued.get(timeout=15)
    assert new_child != running.get()
    assert tasks.whoami.delay().get(timeout=10) > 0
    assert not job_rows(dsn, schema)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_usr1_dumps_stacks_and_keeps_running(tasks: Any, fworker: Any) -> None:
    worker = fworker("-c", "1")
    worker.signal(signal.SIGUSR1)
    start = worker.wait_for_line("most recent call first")
    worker.wait_for_line('File "', start=start)
    result = tasks.whoami.delay()
    try:
        assert result.get(timeout=20) > 0
    except Exception:
        print(worker.log)
        raise
    assert worker.proc.poll() is None


def test_term_twice_is_still_warm(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "1")
    result = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    worker.signal(signal.SIGTERM)
    worker.wait_for_line("Warm shutdown")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: worker.proc.poll() is None, 1, "worker still running")
    gate.touch()
    assert worker.wait(30) == 0
    assert result.get(timeout=5) == int(lines(marker)[0])
    assert os.path.exists(gate)
