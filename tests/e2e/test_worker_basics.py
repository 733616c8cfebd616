"""A real worker runs tasks, records outcomes, and obeys TERM, KILL and time limits."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import TimeLimitExceeded

pytestmark = pytest.mark.e2e


def test_runs_tasks_and_stores_results(proj_app: Any, start_worker: Any) -> None:
    start_worker("-c", "2")
    add = proj_app.tasks["proj.add"]
    assert add.delay(2, 3).get(timeout=10) == 5
    failing = proj_app.tasks["proj.fail"].delay("bad input")
    with pytest.raises(ValueError, match="bad input"):
        failing.get(timeout=10)
    assert failing.state == states.FAILURE
    assert "ValueError: bad input" in failing.traceback


def test_retry_runs_again_with_same_id(proj_app: Any, start_worker: Any) -> None:
    start_worker("-c", "1")
    result = proj_app.tasks["proj.flaky"].delay()
    assert result.get(timeout=15) == "ok after 2"
    assert result.retries == 2


def test_hard_time_limit_stops_infinite_loop(proj_app: Any, start_worker: Any) -> None:
    worker = start_worker("-c", "1")
    result = proj_app.tasks["proj.spin"].delay()
    value = result.get(timeout=15, propagate=False)
    assert isinstance(value, TimeLimitExceeded)
    assert result.state == states.FAILURE
    # the slot was replaced: the worker still runs tasks
    assert proj_app.tasks["proj.add"].delay(1, 1).get(timeout=10) == 2
    assert worker.proc.poll() is None


def test_term_finishes_running_task_then_exits_zero(
    proj_app: Any, start_worker: Any, tmp_path: Path
) -> None:
    worker = start_worker("-c", "1")
    marker = tmp_path / "started"
    result = proj_app.tasks["proj.sleep_then"].delay(1.5, "finished", str(marker))
    worker.wait_for_line("received")
    while not marker.exists():
        time.sleep(0.02)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert result.get(timeout=5) == "finished"


def test_kill_loses_nothing_with_acks_late(
    proj_app: Any, start_worker: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "runs"
    first = start_worker("-c", "1", "-n", "first@%h")
    result = proj_app.tasks["proj.late_sleep"].delay(0.5, str(marker))
    first.wait_for_line("received")
    while not marker.exists():
        time.sleep(0.02)
    first.kill()
    assert result.state == states.PENDING
    start_worker("-c", "1", "-n", "second@%h")
    assert result.get(timeout=30) == "done"
    assert len(marker.read_text().splitlines()) == 2  # cut off once, then run to the end


def test_second_worker_with_same_name_is_refused(start_worker: Any) -> None:
    start_worker("-c", "1", "-n", "same@%h")
    twin = start_worker("-c", "1", "-n", "same@%h", ready=False)
    assert twin.wait(30) != 0
    assert "already running" in twin.log
