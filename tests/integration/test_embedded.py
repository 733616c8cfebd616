"""With no broker configured, celeriac runs an embedded PostgreSQL a newcomer never sets up."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from celeriac import Celery, embedded


@pytest.fixture
def pgdata(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private data directory; nothing configured, so celeriac must embed a server."""
    # Not pytest's tmp_path: concurrent pytest sessions prune each other's numbered
    # directories, and the server's unix socket needs a short path.
    base = Path(tempfile.mkdtemp(prefix="celeriac-emb-"))
    path = (base / "pg").resolve()
    monkeypatch.setenv(embedded.ENV_DIR, str(path))
    monkeypatch.delenv("CELERIAC_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERIAC_RESULT_BACKEND", raising=False)
    yield path
    embedded.stop(path)
    shutil.rmtree(base, ignore_errors=True)


def _running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_no_broker_configured_starts_embedded_server_and_runs_a_task(
    pgdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("newcomer")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with caplog.at_level(logging.WARNING, logger="celeriac.embedded"):
        result = add.delay(2, 3)
    assert str(pgdata) in caplog.text  # the log says where the data is
    assert _running(pgdata)
    assert app.database.url == embedded.embedded_url()  # reused, not started twice
    with app.database.connection() as conn:
        (job,) = app.broker.claim(conn, "celery", 1, worker_id=1)
    from celeriac.worker.executor import Execution

    outcome = Execution(app, job, "w@test").run()
    from celeriac.worker.completer import to_batch

    with app.database.connection() as conn:
        app.broker.commit(conn, to_batch([outcome]), "w@test", 60.0)
    assert result.get(timeout=10) == 5
    app.close()


TASKS = """
from celeriac import Celery

app = Celery("newcomer_tasks")


@app.task
def add(x, y):
    return x + y
"""


@pytest.mark.e2e
def test_newcomer_worker_and_client_share_the_embedded_server(pgdata: Path) -> None:
    project = pgdata.parent / "project"
    project.mkdir()
    (project / "newcomer_tasks.py").write_text(TASKS)
    env = {**os.environ, "PYTHONPATH": str(project)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-A",
            "newcomer_tasks",
            "worker",
            "-P",
            "solo",
            "-l",
            "info",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        log = []
        for line in worker.stdout:  # the worker's log says where the data is, then ready
            log.append(line)
            if " ready." in line:
                break
        assert any(str(pgdata) in line for line in log), "".join(log)
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "from newcomer_tasks import add; print(add.delay(2, 3).get(timeout=30))",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.stdout.strip() == "5", client.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert worker.returncode == 0
    assert not _running(pgdata)  # the last celeriac process using it stopped it


def test_stopped_server_is_started_again_on_the_same_data(pgdata: Path) -> None:
    url = embedded.embedded_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    embedded.stop()
    assert not _running(pgdata)
    url = embedded.embedded_url()
    assert _running(pgdata)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)


def test_two_processes_starting_at_once_share_one_server(pgdata: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, psycopg
        from celeriac.embedded import embedded_url
        url = embedded_url()
        with psycopg.connect(url) as conn:
            conn.execute("SELECT 1")
        print(url)
        sys.stdin.read()  # hold the server until the test lets go
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    urls = []
    for proc in procs:
        assert proc.stdout is not None
        urls.append(proc.stdout.readline().strip())
    for proc in procs:
        _out, err = proc.communicate("", timeout=60)
        assert proc.returncode == 0, err
    assert urls[0] == urls[1] != ""
    assert not _running(pgdata)  # the last holder to exit stopped it
