"""Start and stop everything the demo needs: database, migrations, workers, beat, web.

Used by ``make demo`` (run.py), ``make demo-smoke`` (smoke.py) and the browser test.
Every process is started in its own session and stopped by its own pid: TERM first
(a worker finishes the tasks it is running), KILL only after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

HERE = Path(__file__).resolve().parent
DEMO_DB = "celeriac_demo"


def database_url() -> str:
    """DEMO_DATABASE_URL, else CELERIAC_BROKER_URL's server, else the embedded PostgreSQL.

    The demo's tables and celeriac's schema share one database (``celeriac_demo`` unless
    DEMO_DATABASE_URL names another), so a project and its tasks commit together.
    """
    if os.environ.get("DEMO_DATABASE_URL"):
        return os.environ["DEMO_DATABASE_URL"]
    if os.environ.get("CELERIAC_BROKER_URL"):
        return make_conninfo(os.environ["CELERIAC_BROKER_URL"], dbname=DEMO_DB)
    from celeriac.embedded import embedded_url

    return make_conninfo(embedded_url(), dbname=DEMO_DB)


def _admin_url(url: str) -> str:
    return make_conninfo(url, dbname="postgres")


def create_database(url: str) -> None:
    """Create the URL's database on its server if it does not exist yet."""
    name = conninfo_to_dict(url).get("dbname")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


def drop_database(url: str) -> None:
    name = conninfo_to_dict(url).get("dbname")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


def free_port(preferred: int = 0) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process whose output is echoed (prefixed) and whose lines can be awaited."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], echo: bool) -> None:
        self.name, self.echo = name, echo
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
            if self.echo:
                print(f"[{self.name}] {line}", end="", flush=True)
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-30:])
                    raise RuntimeError(f"{self.name}: no {text!r} in its output:\n{tail}")
                self.cond.wait(min(left, 0.5))

    def stop(self, grace: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Stack:
    """The demo's processes; ``with Stack(...) as stack:`` starts and always stops them."""

    def __init__(
        self,
        url: str,
        var: Path,
        port: int = 8000,
        echo: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.url, self.var, self.echo = url, var, echo
        self.port = free_port(port)
        self.base = f"http://127.0.0.1:{self.port}"
        # the CLI lets CELERIAC_BROKER_URL override the settings (as Celery's does); the
        # demo's processes must all use the database that Django uses
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key not in ("CELERIAC_BROKER_URL", "CELERIAC_RESULT_BACKEND")
        }
        self.env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "demo_site.settings",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "DEMO_DATABASE_URL": url,
            "DEMO_VAR": str(var),
            "DEMO_BASE_URL": self.base,
            "PYTHONUNBUFFERED": "1",
            # one worker process per core already uses every core: BLAS threads on top
            # would only oversubscribe them (the model tool is numpy matrix products)
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **(extra_env or {}),
        }
        self.procs: list[Process] = []

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, env=self.env, check=True)

    def spawn(self, name: str, *args: str) -> Process:
        proc = Process(name, [sys.executable, *args], self.env, self.echo)
        self.procs.append(proc)
        return proc

    def start(self) -> Stack:
        create_database(self.url)
        self.manage("migrate", "--no-input", "-v", "0")
        cores = str(os.cpu_count() or 1)
        worker = self.spawn(
            "worker",
            "-m",
            "celeriac",
            "-A",
            "demo_site",
            "worker",
            "-l",
            "info",
            "-P",
            "prefork",
            "-c",
            cores,
            "-n",
            "demo@%h",
        )
        worker.wait_for(" ready.", 60)
        # beat publishes analysis.check_projects (CELERY_BEAT_SCHEDULE in the settings)
        self.spawn("beat", "-m", "celeriac", "-A", "demo_site", "beat", "-l", "info")
        web = self.spawn("web", "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload")
        self._wait_http(web, 60)
        return self

    def _wait_http(self, web: Process, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=5):
                    return
            except OSError as exc:
                if time.monotonic() > deadline or web.proc.poll() is not None:
                    log = "\n".join(web.lines)
                    raise RuntimeError(f"the web server did not answer:\n{log}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
