"""celeriac multi: three named nodes, restarted while tasks run (none lost, none twice)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.multi import alive, read_pid

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
NODES = ["w1", "w2", "w3"]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def multi_env(worker_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**worker_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def run(multi_env: dict[str, str]) -> Iterator[Run]:
    def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", *args],
            cwd=HERE,
            env=multi_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    yield run_cli
    run_cli("multi", "kill", *NODES)  # never leave detached workers behind


def pids(tmp_path: Path) -> dict[str, int | None]:
    return {n: read_pid(str(tmp_path / "state" / "celeriac" / f"{n}.pid")) for n in NODES}


def test_multi_start_restart_stopwait(proj_app: Any, run: Run, tmp_path: Path) -> None:
    started = run("multi", "start", *NODES, "-c", "1", "-l", "info")
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.count(": OK") == 3
    before = pids(tmp_path)
    assert all(before.values())
    assert (tmp_path / "state" / "celeriac" / "log" / "w1.log").exists()
    ping = run("status")
    assert "3 nodes online." in ping.stdout

    again = run("multi", "start", *NODES)
    assert again.stdout.count("already running") == 3  # never two copies of a node
    assert pids(tmp_path) == before

    marker = tmp_path / "runs"
    results = [proj_app.tasks["proj.sleep_then"].delay(0.3, i, str(marker)) for i in range(12)]
    deadline = time.monotonic() + 20
    while not marker.exists():  # tasks are running when the restart begins
        assert time.monotonic() < deadline
        time.sleep(0.05)
    restarted = run("multi", "restart", *NODES)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert restarted.stdout.count(": DOWN") == 3 and restarted.stdout.count(": OK") == 3
    assert [r.get(timeout=60) for r in results] == list(range(12))  # none lost
    assert len(marker.read_text().splitlines()) == 12  # none ran twice
    after = pids(tmp_path)
    assert all(after.values()) and not set(after.values()) & set(before.values())
    assert not any(alive(pid) for pid in before.values() if pid)

    stopped = run("multi", "stopwait", *NODES)
    assert stopped.stdout.count(": DOWN") == 3
    assert not any(alive(pid) for pid in after.values() if pid)  # gone when it returns
    assert run("status", "-t", "0.5").returncode == 69


def test_multi_kill_takes_the_pool_children_too(run: Run, tmp_path: Path) -> None:
    assert run("multi", "start", "w1", "-c", "2").returncode == 0
    pid = pids(tmp_path)["w1"]
    assert pid
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(children) == 2
    killed = run("multi", "kill", "w1")
    assert "KILL" in killed.stdout
    for each in (pid, *children):
        deadline = time.monotonic() + 10
        while alive(each):
            assert time.monotonic() < deadline, f"{each} survived multi kill"
            time.sleep(0.05)
    # the killed node left its pidfile behind; starting it again is not refused
    restarted = run("multi", "start", "w1", "-c", "1")
    assert restarted.returncode == 0 and ": OK" in restarted.stdout, restarted.stdout
    assert run("multi", "stopwait", "w1").stdout.count(": DOWN") == 1
