"""inspect / control / status / call / result / purge against real worker processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import SoftTimeLimitExceeded, TaskRevokedError

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
HOST = socket.gethostname()

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(worker_env: dict[str, str]) -> Run:
    """Run ``celeriac -A proj ARGS`` as a user would; return the completed process."""

    def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", *args],
            cwd=HERE,
            env=env or worker_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run_cli


def replies(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_inspect_and_control_two_workers(proj_app: Any, start_worker: Any, run: Run) -> None:
    w1, w2 = f"w1@{HOST}", f"w2@{HOST}"
    start_worker("-n", w1, "-c", "1")
    start_worker("-n", w2, "-c", "1", "-P", "threads")
    assert replies(run("inspect", "ping", "-j")) == {w1: {"ok": "pong"}, w2: {"ok": "pong"}}
    assert list(replies(run("inspect", "ping", "-j", "-d", w2))) == [w2]
    registered = replies(run("inspect", "registered", "-j"))
    assert "proj.add" in registered[w1] and "proj.add" in registered[w2]

    unknown = run("inspect", "ping", "-d", "ghost@nowhere")
    assert unknown.returncode == 1
    assert "no live worker named ghost@nowhere" in unknown.stderr

    assert replies(run("control", "add_consumer", "images", "-d", w2, "-j")) == {
        w2: {"ok": "add consumer images"}
    }
    queues = replies(run("inspect", "active_queues", "-j"))
    assert [q["name"] for q in queues[w1]] == ["celery"]
    assert [q["name"] for q in queues[w2]] == ["celery", "images"]
    assert proj_app.tasks["proj.add"].apply_async((1, 2), queue="images").get(timeout=10) == 3

    assert replies(run("control", "pool_grow", "2", "-d", w1, "-j"))[w1]["ok"]
    stats = replies(run("inspect", "stats", "-j"))
    assert stats[w1]["pool"]["max-concurrency"] == 3
    assert stats[w2]["total"] == {"proj.add": 1}
    refused = run("control", "pool_grow", "-d", w2)
    assert refused.returncode == 1 and "cannot grow" in refused.stdout

    assert run("control", "rate_limit", "proj.add", "100/m", "-d", w1).returncode == 0
    assert run("control", "time_limit", "proj.add", "5", "10").returncode == 0
    assert "unknown task" in run("control", "rate_limit", "nope", "1/s").stdout

    # the same through the Python API, with Celery's reply shapes
    assert proj_app.control.inspect().ping() == {w1: {"ok": "pong"}, w2: {"ok": "pong"}}
    assert proj_app.control.inspect(destination=[w1]).active() == {w1: []}
    assert proj_app.control.ping(destination=[w2]) == [{w2: {"ok": "pong"}}]
    assert proj_app.control.inspect(destination=["ghost@x"], timeout=0.2).ping() is None


def test_terminate_stops_only_that_task(
    proj_app: Any, start_worker: Any, run: Run, tmp_path: Path
) -> None:
    start_worker("-n", f"solo1@{HOST}", "-c", "1")
    marker = tmp_path / "started"
    long = proj_app.tasks["proj.sleep_then"].delay(60, "never", str(marker))
    wait_for_file(marker)
    active = replies(run("inspect", "active", "-j"))[f"solo1@{HOST}"]
    assert [task["id"] for task in active] == [long.id]
    assert active[0]["args"][:2] == [60, "never"]
    query = replies(run("inspect", "query_task", long.id, "-j"))[f"solo1@{HOST}"]
    assert query[long.id][0] == "active"

    assert run("control", "terminate", "SIGTERM", long.id).returncode == 0
    with pytest.raises(TaskRevokedError):
        long.get(timeout=15)
    assert long.state == states.REVOKED
    # the replacement process runs the next task normally
    assert proj_app.tasks["proj.add"].delay(2, 2).get(timeout=15) == 4
    assert long.id in replies(run("inspect", "revoked", "-j"))[f"solo1@{HOST}"]
    # a time limit changed at run time applies to the next call of that task
    assert run("control", "time_limit", "proj.sleep_then", "0.5", "2").returncode == 0
    limited = proj_app.tasks["proj.sleep_then"].delay(30)
    with pytest.raises(SoftTimeLimitExceeded):
        limited.get(timeout=20)


def test_status_exit_codes_and_dead_workers(start_worker: Any, run: Run) -> None:
    nobody = run("status")
    assert nobody.returncode == 69
    assert "No nodes replied" in nobody.stderr
    worker = start_worker("-n", f"only@{HOST}", "-c", "1")
    online = run("status")
    assert online.returncode == 0, online.stderr
    assert "1 node online." in online.stdout
    worker.kill()  # SIGKILL: its liveness lock goes with its connection
    assert run("status", "-t", "0.5").returncode == 69


def test_unreachable_database_is_a_clear_error(run: Run, worker_env: dict[str, str]) -> None:
    env = {**worker_env, "CELERIAC_BROKER_URL": "postgresql://me:s3cret@127.0.0.1:1/none"}
    for args in (("status",), ("purge", "-f"), ("call", "proj.add"), ("result", "x")):
        result = run("-b", env["CELERIAC_BROKER_URL"], *args, env=env)
        assert result.returncode == 1, args
        assert "cannot reach PostgreSQL" in result.stderr
        assert "s3cret" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


def test_call_result_and_purge(start_worker: Any, run: Run) -> None:
    bad = run("call", "proj.add", "-a", "[1,")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    waiting = run("call", "proj.add", "-a", "[1, 2]", "--queue", "later")
    assert waiting.returncode == 0
    pending = run("result", waiting.stdout.strip())
    assert pending.returncode == 1 and "PENDING" in pending.stderr
    purged = run("purge", "-f", "-Q", "later")
    assert purged.stdout.strip() == "Purged 1 message from 1 known task queue(s)."

    start_worker("-c", "1")
    sent = run("call", "proj.add", "-a", "[2, 3]")
    assert run("result", "--wait", "10", sent.stdout.strip()).stdout.strip() == "5"
    failed = run("call", "proj.fail", "-a", '["boom"]', "-k", "{}")
    assert run("result", "--wait", "10", failed.stdout.strip()).returncode == 1
    traceback = run("result", "--traceback", failed.stdout.strip())
    assert "ValueError: boom" in traceback.stdout


def test_remote_shutdown(start_worker: Any, run: Run) -> None:
    worker = start_worker("-n", f"down@{HOST}", "-c", "1")
    assert run("control", "shutdown", "-d", f"down@{HOST}").returncode == 0
    assert worker.wait(20) == 0


def test_revoked_scheduled_task_stays_revoked_across_restart(
    proj_app: Any, start_worker: Any, run: Run, tmp_path: Path
) -> None:
    worker = start_worker("-n", f"r1@{HOST}", "-c", "1")
    marker = tmp_path / "ran"
    # due in 8 s: the CLI's revoke (a new process) must land before it is due, even on a
    # loaded machine where starting the CLI takes seconds
    due = datetime.now(UTC) + timedelta(seconds=8)
    later = proj_app.tasks["proj.sleep_then"].apply_async((0, "ran", str(marker)), eta=due)
    assert run("control", "revoke", later.id).returncode == 0
    assert later.state == states.REVOKED
    assert datetime.now(UTC) < due, "revoke took longer than the eta: test inconclusive"
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    start_worker("-n", f"r1@{HOST}", "-c", "1")  # a restarted worker, revoked ids still known
    assert later.id in replies(run("inspect", "revoked", "-j"))[f"r1@{HOST}"]
    after = proj_app.tasks["proj.add"].apply_async((1, 1), eta=due + timedelta(seconds=0.5))
    assert after.get(timeout=20) == 2  # due after the revoked one would have been
    assert later.state == states.REVOKED and not marker.exists()
