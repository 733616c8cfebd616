"""worker -E records Celery's task events in the database; celeriac events prints them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from celeriac.events import read_events

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


def test_task_events_are_recorded(
    proj_app: Any, start_worker: Any, worker_env: dict[str, str]
) -> None:
    start_worker("-E", "-c", "1")
    ok = proj_app.tasks["proj.add"].delay(2, 2)
    assert ok.get(timeout=15) == 4
    bad = proj_app.tasks["proj.fail"].delay("oops")
    with pytest.raises(ValueError):
        bad.get(timeout=15)
    retried = proj_app.tasks["proj.flaky"].delay()
    assert retried.get(timeout=15) == "ok after 2"
    events = read_events(proj_app, 0)
    kinds = [(e["type"], e["uuid"]) for e in events]
    for kind in ("task-received", "task-started", "task-succeeded"):
        assert (kind, ok.id) in kinds
    assert ("task-failed", bad.id) in kinds
    assert ("task-retried", retried.id) in kinds
    succeeded = next(e for e in events if e["type"] == "task-succeeded" and e["uuid"] == ok.id)
    assert succeeded["fields"]["result"] == "4"
    shown = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "events", "--no-follow", "-n", "100"],
        cwd=HERE, env=worker_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"task-succeeded uuid={ok.id}" in shown.stdout
