"""Celery's signals are sent by a real worker and beat, with Celery's arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac.exceptions import TaskRevokedError

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _kwargs(events: list[dict[str, Any]], name: str) -> set[str]:
    found = [e for e in events if e["signal"] == name]
    assert found, f"{name} was never sent"
    return set(found[0]["kwargs"])


def test_worker_and_beat_send_celery_signals(
    proj_app: Any, worker_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "signals.jsonl"
    env = {**worker_env, "SIGNAL_LOG": str(log)}
    os.environ["SIGNAL_LOG"] = str(log)
    import sigproj  # type: ignore[import-not-found]  # noqa: F401  (handlers in this process too)

    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "sigproj", "worker", "-l", "info", "-c", "1"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proj_app.tasks["proj.add"].delay(1, 2).get(timeout=20) == 3
        with pytest.raises(ValueError):
            proj_app.tasks["proj.fail"].delay("x").get(timeout=20)
        assert proj_app.tasks["proj.flaky"].delay().get(timeout=20) == "ok after 2"
        marker = tmp_path / "started"
        long = proj_app.tasks["proj.sleep_then"].delay(60, None, str(marker))
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proj_app.control.terminate(long.id)
        with pytest.raises(TaskRevokedError):
            long.get(timeout=20)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        assert worker.stdout is not None
        worker.stdout.close()
    beat = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "sigproj", "beat"], cwd=HERE, env=env
    )
    try:
        deadline = time.monotonic() + 20
        while not any(e["signal"] == "beat_init" for e in _events(log)):
            assert time.monotonic() < deadline, "beat_init never sent"
            time.sleep(0.05)
        beat.terminate()
        assert beat.wait(15) == 0
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait(10)

    events = _events(log)
    expect = {
        "before_task_publish": {"body", "exchange", "routing_key", "headers", "properties",
                                "declare", "retry_policy"},
        "after_task_publish": {"body", "exchange", "routing_key"},
        "task_received": {"request"},
        "task_prerun": {"task_id", "task", "args", "kwargs"},
        "task_postrun": {"task_id", "task", "args", "kwargs", "retval", "state"},
        "task_success": {"result"},
        "task_failure": {"task_id", "exception", "args", "kwargs", "traceback", "einfo"},
        "task_retry": {"request", "reason", "einfo"},
        "task_revoked": {"request", "terminated", "signum", "expired"},
        "worker_shutting_down": {"sig", "how", "exitcode"},
        "celeryd_init": {"instance", "conf", "options"},
    }  # fmt: skip
    for name, keys in expect.items():
        assert keys <= _kwargs(events, name), name
    for name in ("worker_init", "worker_process_init", "worker_ready", "worker_shutdown",
                 "on_after_configure", "on_after_finalize", "import_modules"):  # fmt: skip
        _kwargs(events, name)
    assert {e["task"] for e in events if e["signal"] == "task_success"} >= {"proj.add"}
