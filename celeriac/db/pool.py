"""Connections to PostgreSQL: one pool per process, safe across fork.

The pool is created lazily on first use. A forked child (prefork pool) must never close
or reuse the sockets it inherited — that would cut its parent's sessions — so after a
fork the old pool is abandoned untouched and a new one is created. Driver errors are
translated into celeriac's ``OperationalError`` / ``DatabaseError`` with the cause kept
and the password masked.

A peer that vanishes without closing the connection (a network partition: packets are
dropped, nothing is refused) would otherwise go unnoticed for a long time on both ends:
the kernel retransmits unacknowledged data for ~15 minutes and sends its first keepalive
after 2 hours. So every connection asks for TCP keepalives and ``TCP_USER_TIMEOUT`` from
libpq (this process gives up on a dead socket) and from the server for its session (the
server drops a partitioned client's session — and with it a worker's liveness lock and
any row locks of an open transaction), both within ``dead_after`` seconds
(``celeriac_dead_connection_timeout``). Parameters given in the URL win.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from celeriac.config import mask_url
from celeriac.exceptions import DatabaseError, OperationalError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds for the first connection of a process
POOL_WAIT = 30.0  # seconds a borrower waits for a busy pool
DEAD_AFTER = 10.0  # seconds of silence after which a TCP peer is taken for gone
KEEPALIVE_PROBES = 3
_abandoned: list[Any] = []  # pools inherited across fork: kept, never closed


class Database:
    """A PostgreSQL database celeriac talks to: URL, schema and a connection pool."""

    def __init__(
        self,
        url: str,
        schema: str = "celeriac",
        pool_size: int = 10,
        timeout: float = 4.0,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = max(2, pool_size)
        self.timeout = timeout
        self.dead_after = dead_after
        given = conninfo_to_dict(url)
        self.tcp: dict[str, Any] = {
            k: v for k, v in tcp_parameters(dead_after).items() if k not in given
        }
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.migrated = False
        # check a pooled connection before lending it (one empty query), so a session the
        # server dropped meanwhile (restart, pg_terminate_backend) is replaced instead of
        # failing the caller: clients' get() after a restart too, not only workers
        self.check_connections = True

    def __repr__(self) -> str:
        return f"<Database {mask_url(self.url)} schema={self.schema}>"

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    _abandoned.append(self._pool)
                    self._pool, self._pid = None, os.getpid()
                if self._pool is None:
                    self._pool = self._make_pool()
        return self._pool

    def _make_pool(self) -> ConnectionPool:
        # Connect once first: an unreachable or misconfigured server fails now with its
        # own reason ("connection refused", "password authentication failed") instead of
        # an anonymous PoolTimeout after the pool's 30 s wait.
        with translate_errors(self.url):
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT).close()
        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(self.timeout)),
                **self.tcp,
            },
            configure=self._configure,
            open=True,
            timeout=POOL_WAIT,
            name=f"celeriac-{self.schema}",
            check=check_if_idle if self.check_connections else None,
        )
        # Let its first connection come before anyone borrows. A borrower that found the
        # pool empty made it open a second one; psycopg_pool lends its connections in
        # turn (FIFO), so a client calling delay() back to back then alternated between
        # two server processes: +60 us of CPU and +100 us of wall time a call (A/B). A
        # pool grows only when borrowers really overlap.
        try:
            pool.wait(timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:  # (wait() closed it: the next borrower makes a new one)
            reason = self._server_refusal() or (
                f"cannot reach PostgreSQL at {mask_url(self.url)}: "
                f"no pooled connection within {CONNECT_TIMEOUT} s"
            )
            raise OperationalError(reason) from exc
        return pool

    def connection(self) -> Borrowed:
        """Borrow an autocommit connection (``with db.connection() as conn``); driver
        errors become celeriac errors."""
        return Borrowed(self)

    def _borrow(self) -> psycopg.Connection[Any]:
        """A pooled connection. While none comes, ask the server itself every ``timeout``
        seconds: its refusal (down, too many clients, bad password) is raised at once
        instead of waiting out the pool; a merely busy pool is waited for up to POOL_WAIT."""
        deadline = time.monotonic() + POOL_WAIT
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self.pool.getconn(timeout=max(0.1, min(self.timeout, remaining)))
            except PoolTimeout as exc:
                refusal = self._server_refusal()
                if refusal is not None or time.monotonic() >= deadline:
                    raise OperationalError(refusal or self._busy()) from exc

    def _server_refusal(self) -> str | None:
        where = mask_url(self.url)
        try:
            psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))).close()
        except psycopg.Error as exc:
            message = str(exc).replace(self.url, where).strip()
            return f"cannot reach PostgreSQL at {where}: {message}"
        return None

    def _busy(self) -> str:
        return (
            f"no free connection to PostgreSQL at {mask_url(self.url)} within {POOL_WAIT:g}s: "
            f"all {self.pool_size} pooled connections are busy (raise broker_pool_limit)"
        )

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A dedicated connection outside the pool (LISTEN, advisory locks)."""
        with translate_errors(self.url):
            kwargs.setdefault("connect_timeout", max(1, round(self.timeout)))
            conn = psycopg.connect(self.url, autocommit=True, **{**self.tcp, **kwargs})
            try:
                self._configure(conn)
            except BaseException:
                conn.close()
                raise
            return conn

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Ask the server to drop this session once its client is silent for dead_after."""
        settings = server_tcp_settings(self.dead_after)
        if not settings or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return
        try:
            conn.execute(
                "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
                [item for pair in settings.items() for item in pair],
            )
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # an older or PostgreSQL-like server: keep the session
            logger.debug("server-side TCP keepalive settings refused: %s", exc)

    def close(self) -> None:
        """Close this process's pool."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


class Borrowed:
    """``Database.connection()``: a pooled autocommit connection for a ``with`` block.

    The hottest path of a client (every ``delay()``), so a plain class rather than a
    generator context manager, and no ``with conn`` inside: on an autocommit connection
    that block only adds a no-op COMMIT call (~15 us of CPU per borrow measured) — a
    ``conn.transaction()`` block closes its own transaction, and the pool rolls back
    anything left open."""

    __slots__ = ("conn", "db")

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            self.conn = self.db._borrow()
        except (psycopg.Error, PoolTimeout) as exc:
            raise translated(exc, self.db.url) from exc
        return self.conn

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self.conn
        # noted here, not in the pool's ``reset`` hook: a pool with a reset hook hands
        # every returned connection to its worker thread, a thread hop per borrow that
        # cost back-to-back delay() calls ~40 us of CPU and a connection not yet back
        # for the next call
        conn._celeriac_returned = time.monotonic()  # type: ignore[attr-defined]
        self.db.pool.putconn(conn)
        if isinstance(exc, psycopg.Error | PoolTimeout):
            raise translated(exc, self.db.url) from exc


def reused_cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """``conn``'s own cursor, kept on it for the statements that run on it again and
    again (a publish, a claim, a finish): psycopg keeps a cursor's adaptation state while
    it runs the same query, and making a new cursor per statement cost ~20 us of CPU per
    ``delay()`` (A/B, 3 x 10 x 2,000 calls). Only for a statement whose rows are read
    before the connection runs the next one on this cursor."""
    cursor: psycopg.Cursor[Any] | None = getattr(conn, "_celeriac_cursor", None)
    if cursor is None or cursor.closed:
        cursor = conn.cursor()
        conn._celeriac_cursor = cursor  # type: ignore[attr-defined]
    return cursor


def tcp_parameters(dead_after: float) -> dict[str, int]:
    """libpq parameters that make a silent peer an error after about ``dead_after`` s:
    keepalives for an idle connection (the first probe after ``idle``, then
    KEEPALIVE_PROBES probes ``interval`` apart), ``tcp_user_timeout`` for data sent and
    never acknowledged. Nothing (the kernel's defaults) when ``dead_after`` is 0."""
    if not dead_after or dead_after <= 0 or psycopg.pq.version() < 120000:
        return {}  # (libpq before 12 knows no tcp_user_timeout)
    interval = max(1, round(dead_after / 5))
    idle = max(1, round(dead_after) - KEEPALIVE_PROBES * interval)
    return {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": KEEPALIVE_PROBES,
        "tcp_user_timeout": round(dead_after * 1000),
    }


def server_tcp_settings(dead_after: float) -> dict[str, str]:
    """The same limits as server settings for the session (the server's end of it)."""
    params = tcp_parameters(dead_after)
    if not params:
        return {}
    return {
        "tcp_keepalives_idle": str(params["keepalives_idle"]),
        "tcp_keepalives_interval": str(params["keepalives_interval"]),
        "tcp_keepalives_count": str(params["keepalives_count"]),
        "tcp_user_timeout": str(params["tcp_user_timeout"]),
    }


CHECK_AFTER_IDLE = 1.0  # seconds


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pool's check (one empty query), only for a connection that sat idle in the
    pool for over CHECK_AFTER_IDLE: a session used a moment ago is almost surely alive,
    and checking it would double the round trips of back-to-back ``delay()`` calls. If it
    was cut in that moment the caller's statement fails as it would have without a check."""
    returned = getattr(conn, "_celeriac_returned", None)
    if returned is not None and time.monotonic() - returned < CHECK_AFTER_IDLE:
        return
    ConnectionPool.check_connection(conn)


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn psycopg errors into celeriac errors that keep the cause, password masked."""
    try:
        yield
    except (psycopg.Error, PoolTimeout) as exc:
        raise translated(exc, url) from exc


def translated(exc: psycopg.Error | PoolTimeout, url: str) -> OperationalError | DatabaseError:
    """The celeriac error for a driver error: OperationalError when the connection
    failed, DatabaseError for the rest; the message keeps the cause, password masked."""
    message = str(exc).replace(url, mask_url(url)).strip()
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        return OperationalError(f"cannot reach PostgreSQL at {mask_url(url)}: {message}")
    return DatabaseError(f"database error: {message}")


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means the connection, not the statement, failed."""
    return isinstance(exc, OperationalError | psycopg.OperationalError | PoolTimeout)


__all__ = ["Database", "is_connection_error", "reused_cursor", "translate_errors"]
