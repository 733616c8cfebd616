"""Fixtures of the fault suite: a private cluster, worker subprocesses, counts.

Each fault test prints its counts (sent, ran, ran more than once, outcomes recorded,
recovery time) in a "fault counts" section at the end of the pytest run.
"""

from __future__ import annotations

import collections
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.faults.cluster import Cluster
from tests.procs import WorkerProcess

HERE = Path(__file__).parent
REPORT: list[str] = []


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A private PostgreSQL for this session: restart it, shrink it, kill its sessions."""
    server = Cluster()
    try:
        server.init()
        server.start()
        with server.connect("postgres") as conn:
            conn.execute("CREATE DATABASE faults")
    except Exception:
        server.destroy()
        raise
    yield server
    server.destroy()


@pytest.fixture
def fschema(cluster: Cluster) -> Iterator[str]:
    name = f"f_{uuid.uuid4().hex[:10]}"
    yield name
    cluster.wait_ready()
    with cluster.connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def fapp(cluster: Cluster, fschema: str) -> Iterator[Any]:
    """faultproj's app, as the test's client, on the private cluster and the test's schema."""
    sys.path.insert(0, str(HERE))
    import faultproj  # type: ignore[import-not-found]

    client = faultproj.app
    client.conf["broker_url"] = cluster.url()
    client.conf["celeriac_schema"] = fschema
    client._db = client._result_db = client._broker = client._backend = None
    client.ensure_schema()
    yield client
    client.close()


@pytest.fixture
def runlog(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def worker_env(cluster: Cluster, fschema: str, runlog: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FAULTS_DSN": cluster.url(),
            "CELERIAC_SCHEMA": fschema,
            "FAULTS_RUNLOG": str(runlog),
            "PYTHONPATH": str(HERE) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.pop("CELERIAC_BROKER_URL", None)
    return env


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        ready: bool = True,
        pre: tuple[str, ...] = (),
        wrap: tuple[str, ...] = (),
    ) -> WorkerProcess:
        """Start a worker; ``pre`` are global options (``-b URL``) put before ``worker``,
        ``wrap`` a command prefix (``ip netns exec NAME``)."""
        logfile = tmp_path / f"worker{len(started)}.log"
        worker = WorkerProcess(
            list(args),
            {**worker_env, **(env or {})},
            app="faultproj",
            cwd=HERE,
            pre=pre,
            logfile=logfile,
            wrap=wrap,
        )
        started.append(worker)
        if ready:
            worker.wait_for_line(" ready.")
        return worker

    yield start
    for worker in started:
        worker.stop()


def runs(runlog: Path) -> collections.Counter[str]:
    """How many times each task id really ran."""
    if not runlog.exists():
        return collections.Counter()
    return collections.Counter(line.rsplit(" ", 1)[0] for line in runlog.read_text().splitlines())


def outcomes(
    cluster: Cluster, schema: str, ids: list[str], conn: psycopg.Connection[Any] | None = None
) -> dict[str, str]:
    """Stored final-or-not statuses of these task ids."""
    query = sql.SQL("SELECT task_id, status FROM {}.results WHERE task_id = ANY(%s)").format(
        sql.Identifier(schema)
    )
    if conn is not None:
        return dict(conn.execute(query, (ids,)).fetchall())
    with cluster.connect() as own:
        return dict(own.execute(query, (ids,)).fetchall())


def wait_for_outcomes(
    cluster: Cluster,
    schema: str,
    ids: list[str],
    timeout: float,
    final: frozenset[str],
    conn: psycopg.Connection[Any] | None = None,
) -> dict[str, str]:
    """Poll (the test's own observation, not synchronisation of the code under test)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = outcomes(cluster, schema, ids, conn)
        except psycopg.OperationalError:
            got = {}
        if sum(1 for status in got.values() if status in final) == len(ids):
            return got
        if time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def report(name: str, **counts: Any) -> None:
    """Print a fault's counts in the run's summary."""
    text = ", ".join(
        f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in counts.items()
    )
    REPORT.append(f"{name}: {text}")
    print(f"[fault] {name}: {text}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("fault counts")
        for line in REPORT:
            terminalreporter.write_line(line)
