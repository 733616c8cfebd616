"""Connections to PostgreSQL: one pool per process, safe across fork.

The pool is created lazily on first use. A forked child (prefork pool) must never close
or reuse the sockets it inherited — that would cut its parent's sessions — so after a
fork the old pool is abandoned untouched and a new one is created. Driver errors are
translated into celeriac's ``OperationalError`` / ``DatabaseError`` with the cause kept
and the password masked.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from celeriac.config import mask_url
from celeriac.exceptions import DatabaseError, OperationalError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds for the first connection of a process

_abandoned: list[Any] = []  # pools inherited across fork: kept, never closed


class Database:
    """A PostgreSQL database celeriac talks to: URL, schema and a connection pool."""

    def __init__(
        self, url: str, schema: str = "celeriac", pool_size: int = 10, timeout: float = 4.0
    ) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = max(2, pool_size)
        self.timeout = timeout
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.migrated = False
        # long-lived processes (workers) check a pooled connection before lending it, so
        # a session the server dropped meanwhile is replaced instead of failing the caller
        self.check_connections = False

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
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self.timeout))},
            open=True,
            timeout=self.timeout,
            name=f"celeriac-{self.schema}",
            check=ConnectionPool.check_connection if self.check_connections else None,
        )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow an autocommit connection; driver errors become celeriac errors."""
        borrowed = False
        with translate_errors(self.url):
            try:
                with self.pool.connection() as conn:
                    borrowed = True
                    yield conn
            except PoolTimeout as exc:
                if borrowed:
                    raise
                raise OperationalError(self._why_no_connection()) from exc

    def _why_no_connection(self) -> str:
        """Why the pool had no connection in time: the server's own refusal if there is one."""
        where = mask_url(self.url)
        try:
            psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))).close()
        except psycopg.Error as exc:
            message = str(exc).replace(self.url, where).strip()
            return f"cannot reach PostgreSQL at {where}: {message}"
        return (
            f"no connection to PostgreSQL at {where} within {self.timeout:g}s: the pool is "
            f"still retrying after earlier failures, or all {self.pool_size} pooled "
            f"connections are busy (raise broker_pool_limit or broker_connection_timeout)"
        )

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A dedicated connection outside the pool (LISTEN, advisory locks)."""
        with translate_errors(self.url):
            kwargs.setdefault("connect_timeout", max(1, round(self.timeout)))
            return psycopg.connect(self.url, autocommit=True, **kwargs)

    def close(self) -> None:
        """Close this process's pool."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn psycopg errors into celeriac errors that keep the cause, password masked."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        message = str(exc).replace(url, mask_url(url)).strip()
        raise OperationalError(f"cannot reach PostgreSQL at {mask_url(url)}: {message}") from exc
    except psycopg.Error as exc:
        message = str(exc).replace(url, mask_url(url)).strip()
        raise DatabaseError(f"database error: {message}") from exc


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means the connection, not the statement, failed."""
    return isinstance(exc, OperationalError | psycopg.OperationalError | PoolTimeout)


__all__ = ["Database", "is_connection_error", "translate_errors"]
