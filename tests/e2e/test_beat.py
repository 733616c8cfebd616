"""Beat processes on one schedule: each tick published once; run-time schedule changes."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from celeriac.beat import enable_periodic_task, save_periodic_task

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


@pytest.fixture
def start_beat(worker_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "beatproj", "beat", "-l", "info"],
            cwd=HERE,
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def fetch(app: Any, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with app.database.connection() as conn:
        query = sql.SQL(text).format(schema=sql.Identifier(app.database.schema))
        return conn.execute(query, params).fetchall()


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_two_beats_publish_each_tick_once(proj_app: Any, start_beat: Any) -> None:
    proj_app.ensure_schema()
    first, second = start_beat(), start_beat()

    def runs(name: str) -> int:
        rows = fetch(
            proj_app, "SELECT total_run_count FROM {schema}.periodic_tasks WHERE name=%s", name
        )
        return int(rows[0][0]) if rows else 0

    wait_until(lambda: runs("add-every-second") >= 4)
    # changed at run time: stored in the DB, both beats pick it up without a restart
    save_periodic_task(proj_app, "dyn", "proj.add", 1.0, args=(5, 5))
    wait_until(lambda: runs("dyn") >= 2, timeout=10)
    enable_periodic_task(proj_app, "add-every-second", False)
    for proc in (first, second):
        proc.terminate()
        assert proc.wait(15) == 0
    ticks = fetch(proj_app, "SELECT name, run_at, task_id FROM {schema}.periodic_ticks")
    jobs = fetch(
        proj_app,
        "SELECT task_id, headers->>'periodic_task_name' FROM {schema}.jobs ORDER BY id",
    )
    assert len(jobs) == len(ticks) == len({t[2] for t in ticks})
    assert {t[2] for t in ticks} == {j[0] for j in jobs}
    per_entry = {name: sorted(t[1] for t in ticks if t[0] == name) for name, _, _ in ticks}
    for name, instants in per_entry.items():
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(instants)}
        # whole seconds apart, never two ticks for one instant (a beat starved of CPU for
        # over a second skips an instant rather than publishing it late twice)
        assert all(gap >= 1.0 and gap.is_integer() for gap in gaps), (name, instants)
    assert runs("add-every-second") == len(per_entry["add-every-second"])
    names = {row[0] for row in fetch(proj_app, "SELECT name FROM {schema}.periodic_tasks")}
    assert names == {"add-every-second", "c", "dyn"}  # "c" from on_after_configure


def test_worker_with_embedded_beat_runs_periodic_tasks(proj_app: Any, worker_env: Any) -> None:
    proj_app.ensure_schema()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "beatproj", "worker", "-B", "-c", "1"],
        cwd=HERE,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def done() -> bool:
            return bool(
                fetch(proj_app, "SELECT 1 FROM {schema}.results WHERE status = 'SUCCESS' LIMIT 1")
            )

        wait_until(done)
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
