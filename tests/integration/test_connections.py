"""An app gives back every connection it opened when closed (no leaks across tests)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import psycopg
import pytest

from celeriac import Celery
from tests.forward import Forwarder


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND client_port IS NOT NULL "
            "AND client_addr IS NOT NULL AND backend_type = 'client backend' "
            "AND application_name = 'celeriac-leak-probe'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_close_releases_pool_and_result_listener(dsn: str, schema: str) -> None:
    url = dsn + ("&" if "?" in dsn else "?") + "application_name=celeriac-leak-probe"
    app: Any = Celery("leaks", broker=url, celeriac_schema=schema)

    @app.task(name="leaks.noop")
    def noop() -> None:
        return None

    task = noop
    result = task.delay()
    app.backend.store_state(result.id, "SUCCESS", 1)
    assert result.get(timeout=5) == 1  # starts the result listener
    assert _backends(dsn) >= 2
    app.close()
    # a backend exits a moment after its client closed the socket: allow it that moment
    deadline = time.monotonic() + 5
    while _backends(dsn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _backends(dsn) == 0


def _tcp_settings(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    row = conn.execute(
        "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
        " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_sessions_ask_for_dead_peer_detection(dsn: str, schema: str) -> None:
    """Both ends give up on a silent peer after celeriac_dead_connection_timeout: libpq's
    keepalives and tcp_user_timeout here, the same as the session's settings there (the
    server then drops a partitioned worker's session, and its liveness lock with it)."""
    app: Any = Celery("tcp", broker=dsn, celeriac_schema=schema)
    app.conf.celeriac_dead_connection_timeout = 10
    try:
        with app.database.connection() as pooled:
            assert _tcp_settings(pooled) == ("4", "2", "3", "10000")
            params = pooled.info.get_parameters()
            assert params["keepalives_idle"] == "4" and params["tcp_user_timeout"] == "10000"
        dedicated = app.database.connect()
        with dedicated:
            assert _tcp_settings(dedicated) == ("4", "2", "3", "10000")
    finally:
        app.close()


def test_dead_peer_detection_off_and_url_parameters_win(dsn: str, schema: str) -> None:
    url = dsn + ("&" if "?" in dsn else "?") + "keepalives_idle=7"
    app: Any = Celery("tcp", broker=url, celeriac_schema=schema)
    try:
        with app.database.connection() as pooled:
            params = pooled.info.get_parameters()
            assert params["keepalives_idle"] == "7" and params["tcp_user_timeout"] == "10000"
    finally:
        app.close()
    app = Celery("tcp", broker=dsn, celeriac_schema=schema, celeriac_dead_connection_timeout=0)
    try:
        with app.database.connection() as pooled:
            assert "tcp_user_timeout" not in pooled.info.get_parameters()
            assert _tcp_settings(pooled)[3] == "0"
    finally:
        app.close()


def test_back_to_back_calls_keep_to_one_session(dsn: str, schema: str) -> None:
    """One thread calling delay() again and again uses one server session: the pool is
    not made to open a second one by its first borrower (psycopg_pool lends connections
    in turn, so two would alternate between two server processes on every call)."""
    app: Any = Celery("sessions", broker=dsn, celeriac_schema=schema)

    @app.task(name="sessions.noop")
    def noop(i: int) -> int:
        return i

    try:
        for i in range(50):
            noop.delay(i)
        stats = app.database.pool.get_stats()
        assert stats["pool_size"] == 1, stats
    finally:
        app.close()


class _FirstOnly(Forwarder):
    """Passes the first connection on to PostgreSQL and, until ``open_all`` is set, holds
    every later one without an answer (a server that stopped answering right after a
    client's first connect)."""

    def __init__(self, dsn: str) -> None:
        self.open_all = threading.Event()
        self.accepted = 0
        super().__init__(dsn)

    def serve(self, client: socket.socket) -> None:
        self.accepted += 1
        if self.accepted == 1 or self.open_all.is_set():
            self.forward(client)


def test_a_pool_whose_first_connection_never_comes_is_replaced(dsn: str, monkeypatch: Any) -> None:
    """The first borrow waits for the pool's first connection; when it never comes the
    borrower gets a reason, and the next borrow makes a new pool instead of lending from
    the one psycopg_pool closed on that timeout."""
    from celeriac.db import pool as pool_module
    from celeriac.db.pool import Database
    from celeriac.exceptions import OperationalError

    monkeypatch.setattr(pool_module, "CONNECT_TIMEOUT", 1)
    forwarder = _FirstOnly(dsn)
    db = Database(forwarder.url, timeout=1.0)
    try:
        with pytest.raises(OperationalError, match="cannot reach PostgreSQL"):
            with db.connection():
                pass
        forwarder.open_all.set()
        with db.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        db.close()
        forwarder.close()
