"""Shared helpers of the benchmark: statistics, worker subprocesses, PostgreSQL bookkeeping.

Everything here talks to loopback services only and cleans up what it starts: workers
run in their own process group and are stopped by that group's id.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def summary(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max of repeated measurements, and the measurements in the order
    they were made (None when nothing was measured)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "n": len(ms),
    }


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` if missing (the benchmark never touches other databases)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a database the benchmark created (FORCE: our own leftover sessions only)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def transactions(dsn: str) -> int:
    """Committed + rolled-back transactions of the database so far (pg_stat_database).

    Backends flush these counters when they end a session (and about once a second while
    busy), so read them after the workers have stopped.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Workers:
    """Worker subprocesses of one system, each in its own process group."""

    commands: list[list[str]]
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self) -> Workers:
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        for index, command in enumerate(self.commands):
            log = Path(tempfile.mkstemp(prefix=f"bench-worker-{index}-", suffix=".log")[1])
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append(proc)
            self.logs.append(log)
        return self

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail(log)}")

    def rss_mib(self) -> float:
        """Resident memory of every process in the workers' process groups, in MiB."""
        return sum(self.rss_by_worker())

    def rss_by_worker(self) -> list[float]:
        """Resident memory of each worker's whole process group (parent and pool), in MiB."""
        kib = {proc.pid: 0 for proc in self.procs}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            group = int(fields[2])  # field 5 of stat: process group
            if group in kib:
                kib[group] += int(fields[21]) * PAGE_KIB  # field 24: rss in pages
        return [kib[proc.pid] / 1024 for proc in self.procs]

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown (SIGTERM to each group); SIGKILL whatever is left after ``timeout``."""
        for proc in self.procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for log in self.logs:
            log.unlink(missing_ok=True)

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def python() -> str:
    return sys.executable


def bin_path(name: str) -> str:
    """A console script installed beside this interpreter (celery, procrastinate, pgq)."""
    return str(Path(sys.executable).parent / name)


class StampFile:
    """A file tasks append ``<key> <time>`` lines to (O_APPEND: whole lines, any process)."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="bench-stamps-", suffix=".txt")
        os.close(fd)
        self.path = Path(name)

    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.path.read_text().splitlines() if line.strip()]

    def count(self) -> int:
        return len(self.path.read_text().splitlines())

    def clear(self) -> None:
        self.path.write_text("")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def stamp(path: str, *fields: Any) -> None:
    """Append one line (called inside tasks)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())
    finally:
        os.close(fd)


@contextmanager
def chord_app_workers(prefix: str, count: int, concurrency: int) -> Iterator[Any]:
    """``bench.chord_app`` in a fresh schema with ``count`` live workers; yields the app.

    Waits until every worker is registered (not a fixed sleep); afterwards stops the
    workers (TERM to their process groups), closes the app and drops the schema.
    """
    url = os.environ.setdefault("CELERIAC_BROKER_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = os.environ["CELERIAC_SCHEMA"] = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    from bench.chord_app import app

    app.ensure_schema()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celeriac",
                "-A",
                "bench.chord_app",
                "worker",
                "-l",
                "warning",
                "-c",
                str(concurrency),
                "-n",
                f"{prefix}{n}@%h",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]
    try:
        wait_until(lambda: len(app.control.live_nodes()) >= count, 60, 0.1, "workers to come up")
        yield app
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        app.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
