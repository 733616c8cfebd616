"""Time limits in every pool (the table in celeriac/worker/pool.py) and child replacement."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import TimeLimitExceeded
from tests.e2e.faultkit import lines, wait_lines

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_soft_limit_raises_inside_the_task(pool: str, tasks: Any, fworker: Any) -> None:
    fworker("-P", pool, "-c", "1")
    result = tasks.soft_catch.delay()
    assert result.get(timeout=15) == "cleaned up"
    assert result.state == states.SUCCESS


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_soft_limit_from_the_command_line(pool: str, tasks: Any, fworker: Any) -> None:
    fworker("-P", pool, "-c", "1", "--soft-time-limit", "0.3")
    assert tasks.soft_catch.apply_async(soft_time_limit=None).get(timeout=15) == "cleaned up"


def _assert_time_limit(result: Any, marker: Path) -> None:
    exc = result.get(timeout=20, propagate=False)
    assert isinstance(exc, TimeLimitExceeded), exc
    assert result.state == states.FAILURE
    # on_failure ran, and so did the errback
    assert lines(Path(f"{marker}.failure")) == ["TimeLimitExceeded"]


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_hard_limit_stops_a_python_loop(
    pool: str, tasks: Any, fworker: Any, tmp_path: Path
) -> None:
    marker, errback = tmp_path / "started", tmp_path / "errback"
    worker = fworker("-P", pool, "-c", "1")
    result = tasks.hard_spin.apply_async(
        (str(marker),), link_error=tasks.errback_marker.s(str(errback))
    )
    _assert_time_limit(result, marker)
    assert wait_lines(errback, 1) == ["TimeLimitExceeded"]
    # the slot works again (prefork: in a new child)
    pid = tasks.whoami.delay().get(timeout=10)
    if pool == "prefork":
        assert pid != int(lines(marker)[0])
        assert "Hard time limit (1s) exceeded" in worker.log
    assert worker.proc.poll() is None


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_hard_limit_on_a_task_blocked_in_c(
    pool: str, tasks: Any, fworker: Any, tmp_path: Path
) -> None:
    """time.sleep(20) under a 1 s limit: prefork kills the child, solo's SIGALRM interrupts
    the sleep, threads records the failure at 2 s and gives the slot to a new thread."""
    marker = tmp_path / "started"
    worker = fworker("-P", pool, "-c", "1")
    result = tasks.hard_sleep.delay(str(marker))
    _assert_time_limit(result, marker)
    assert tasks.whoami.delay().get(timeout=10)  # long before the 20 s sleep could end
    if pool == "threads":
        assert "its thread is stuck, replacing it" in worker.log
    assert worker.proc.poll() is None


def test_worker_time_limit_option(tasks: Any, fworker: Any, tmp_path: Path) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    fworker("-c", "1", "--time-limit", "1")
    result = tasks.block.delay(str(marker), str(gate))
    exc = result.get(timeout=20, propagate=False)
    assert isinstance(exc, TimeLimitExceeded), exc


def test_max_tasks_per_child(tasks: Any, fworker: Any) -> None:
    fworker("-c", "1", "--max-tasks-per-child", "2")
    pids = [tasks.whoami.delay().get(timeout=10) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_max_memory_per_child(tasks: Any, fworker: Any) -> None:
    probe = fworker("-c", "1", "-n", "probe@%h")
    _pid, baseline = tasks.max_rss.delay().get(timeout=10)
    probe.signal(signal.SIGTERM)
    assert probe.wait(20) == 0
    # a child may grow 40 MiB past what an idle one uses before it is replaced
    fworker("-c", "1", "--max-memory-per-child", str(baseline + 40 * 1024))
    first = tasks.whoami.delay().get(timeout=10)
    assert tasks.whoami.delay().get(timeout=10) == first  # small tasks: kept
    assert tasks.grow.delay(80).get(timeout=10) == first  # the task itself completes...
    assert tasks.whoami.delay().get(timeout=10) != first  # ...then the child is replaced
