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


def test_task_sent_events_from_clients_and_workers(
    proj_app: Any, worker_env: dict[str, str], start_worker: Any, monkeypatch: Any
) -> None:
    """task_send_sent_event: a publisher records task-sent (Celery's fields) with each
    message it writes — in the caller's transaction when given one; a worker does for
    the chain steps and chord bodies it publishes."""
    import psycopg

    from celeriac import chain, chord

    monkeypatch.setitem(proj_app.conf, "task_send_sent_event", True)  # proj is shared
    add = proj_app.tasks["proj.add"]
    sent = add.apply_async((2, 3), countdown=60)
    with psycopg.connect(proj_app.conf.broker_url) as conn:
        add.apply_async((1, 1), connection=conn)
        conn.rollback()  # the task was never queued: no event either
    events = [e for e in read_events(proj_app, 0) if e["type"] == "task-sent"]
    assert [e["uuid"] for e in events] == [sent.id]
    fields = events[0]["fields"]
    assert fields["name"] == "proj.add"
    assert fields["args"] == "[2, 3]"
    assert fields["queue"] == fields["routing_key"] == "celery"
    assert fields["eta"] is not None and fields["root_id"] == sent.id

    worker_env["PROJ_SENT_EVENTS"] = "1"  # the worker's app turns the setting on
    worker = start_worker("-c", "2")
    steps = chain(add.s(1, 1), add.s(10)).apply_async()
    joined = chord([add.s(1, 1), add.s(2, 2)], add.si(5, 5)).apply_async()
    assert steps.get(timeout=15) == 12
    assert joined.get(timeout=15) == 10
    worker.stop()  # a warm shutdown writes what the worker published and its events
    sent_ids = {e["uuid"] for e in read_events(proj_app, 0) if e["type"] == "task-sent"}
    assert steps.id in sent_ids  # published by the worker after the first step
    assert steps.parent.id in sent_ids  # published by this client
    assert joined.id in sent_ids  # the chord body, published by the worker that joined it
    shown = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "events", "--no-follow", "-n", "100"],
        cwd=HERE, env=worker_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"task-sent uuid={sent.id}" in shown.stdout
