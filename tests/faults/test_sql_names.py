"""SQL-looking schema, queue, task names and ids at every entry point: migrate, publish,
claim, result, revoke, purge, inspect. Names are parameters or quoted identifiers, so they
are stored exactly as given and nothing else happens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from tests.faults.cluster import Cluster
from tests.faults.conftest import HERE, report, runs

pytestmark = pytest.mark.faults

SCHEMA = 'f"; DROP SCHEMA public CASCADE; --ü'
QUEUE = "q'; DROP TABLE jobs; --\"ü\\"
TASK_ID = "id'); DELETE FROM results; --"


@pytest.fixture
def fschema(cluster: Cluster) -> Iterator[str]:
    """Overrides the suite's schema with an SQL-looking one (migrated by the CLI below)."""
    yield SCHEMA
    with cluster.connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELERIAC_SCHEMA": SCHEMA, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "faultproj", "-b", cluster.url(), *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sql_looking_names_everywhere(
    cluster: Cluster, start_worker: Any, runlog: Any, worker_env: dict[str, str]
) -> None:
    with cluster.connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    migrated = _cli(cluster, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    sys.path.insert(0, str(HERE))
    import faultproj  # type: ignore[import-not-found]

    app = faultproj.app
    app.conf["broker_url"] = cluster.url()
    app.conf["celeriac_schema"] = SCHEMA
    app._db = app._result_db = app._broker = app._backend = app._control = None
    try:
        _exercise(cluster, app, start_worker, runlog)
    finally:
        app.close()


def _exercise(cluster: Cluster, app: Any, start_worker: Any, runlog: Any) -> None:
    name = faultproj_name()
    start_worker("-P", "threads", "-c", "2", "-n", "sqlish@%h", "-Q", QUEUE)
    done = app.send_task(name, (QUEUE,), task_id=TASK_ID, queue=QUEUE)
    assert done.get(timeout=30) == QUEUE  # publish, claim, run, result
    later = app.send_task(name, ("later",), task_id=TASK_ID + "-2", queue=QUEUE, countdown=600)
    app.control.revoke(later.id)  # revoke a waiting task
    later.get(timeout=30, propagate=False)
    assert later.status == "REVOKED"
    app.send_task(name, ("gone",), task_id=TASK_ID + "-3", queue=QUEUE, countdown=600)
    assert app.control.purge([QUEUE]) == 1
    cli_result = _cli(cluster, "result", TASK_ID)
    assert json.loads(cli_result.stdout) == QUEUE, cli_result.stderr
    assert _cli(cluster, "purge", "-f", "-Q", QUEUE).returncode == 0
    assert _cli(cluster, "inspect", "query_task", TASK_ID).returncode == 0
    with cluster.connect() as conn:
        stored = conn.execute(
            sql.SQL("SELECT name, queue, status FROM {}.results WHERE task_id = %s").format(
                sql.Identifier(SCHEMA)
            ),
            (TASK_ID,),
        ).fetchone()
        public_ok = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")
        public = public_ok.fetchone()
    ran = runs(runlog)
    report("sql-looking-names", sent=3, ran=sum(ran.values()), revoked=1, purged=1)
    assert stored == (name, QUEUE, "SUCCESS")
    assert public == (1,)
    assert ran == {TASK_ID: 1}


def faultproj_name() -> str:
    import faultproj

    return str(faultproj.SQL_LOOKING_NAME)
