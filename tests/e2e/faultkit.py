"""Helpers for the worker fault tests: workers with ``faults_tasks`` loaded, awaiting
files and rows (events, not sleeps), and reading the job table directly."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from tests.forward import pump

T = TypeVar("T")

HERE = Path(__file__).parent


def wait_until(check: Callable[[], T], timeout: float = 20, what: str = "condition") -> T:
    """Poll ``check`` (cheap, side-effect free) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    """The lines of a marker file (empty when it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []


def wait_lines(path: Path, count: int, timeout: float = 20) -> list[str]:
    """Wait until ``path`` has at least ``count`` lines."""
    return wait_until(
        lambda: found if len(found := lines(path)) >= count else None,
        timeout,
        f"{count} line(s) in {path.name}",
    )


def job_rows(dsn: str, schema: str) -> list[dict[str, Any]]:
    """Every row of the job table, as dicts."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            sql.SQL(
                "SELECT id, task_id, task_name, state, attempt, error, worker_id FROM {}.jobs "
                "ORDER BY id"
            ).format(sql.Identifier(schema))
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def result_row(dsn: str, schema: str, task_id: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            sql.SQL("SELECT status, traceback FROM {}.results WHERE task_id = %s").format(
                sql.Identifier(schema)
            ),
            (task_id,),
        )
        row = cur.fetchone()
        return {"status": row[0], "traceback": row[1]} if row else None


class Outage:
    """A TCP forwarder to PostgreSQL that the test can cut: ``down()`` refuses new
    connections and resets the open ones (as a server restart or a network cut does),
    ``up()`` serves again. Point a worker at ``url`` to put only it behind the cut."""

    def __init__(self, dsn: str) -> None:
        self.target = ("127.0.0.1", int(dsn.split("@", 1)[1].split("/")[0].split(":")[1]))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = dsn.replace(f":{self.target[1]}/", f":{self.port}/")
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.server: socket.socket | None = None

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            server, self.server = self.server, None
            doomed, self.sockets = self.sockets, []
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
            except OSError:
                pass
            server.close()
        for sock in doomed:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                # close() alone leaves a socket whose pump thread sits in recv() open (the
                # kernel keeps it until that call returns): the worker then waited forever
                # for a reply to a request that was never forwarded. shutdown() wakes it.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()  # RST for what is left, like a dead server

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                if self.server is not server:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()


@pytest.fixture
def tasks(proj_app: Any) -> Any:
    """The ``faults_tasks`` module, registered on the test's handle of the e2e app."""
    sys.path.insert(0, str(HERE))
    import faults_tasks  # type: ignore[import-not-found]

    return faults_tasks


@pytest.fixture
def fworker(start_worker: Any) -> Iterator[Callable[..., Any]]:
    """Start a worker that also loads ``faults_tasks``."""

    def start(*args: str, ready: bool = True) -> Any:
        return start_worker("-I", "faults_tasks", *args, ready=ready)

    yield start
