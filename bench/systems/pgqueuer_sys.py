"""pgqueuer with its documented worker (``pgq run module:factory``)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import asyncpg
import psycopg

from bench.common import Workers, python
from bench.systems.base import System

BATCH = 5000


class PgqueuerSystem(System):
    """pgqueuer in its own database."""

    name = "pgqueuer"
    label = "pgqueuer"
    has_results = False  # pgqueuer keeps a status log, no task results
    has_chords = False

    def __init__(self, dsn: str) -> None:
        self.db_dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.conn: Any = None
        self.queries: Any = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _connect(self) -> None:
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.conn = self._run(asyncpg.connect(self.db_dsn))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def close_clients(self) -> bool:
        self._run(self.conn.close())
        self._connect()
        return True

    def setup(self) -> None:
        self._connect()
        if not self._run(self.queries.schema_is_installed()):
            self._run(self.queries.install())
        self.reset()

    def reset(self) -> None:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    def teardown(self) -> None:
        self.close_poll()
        if self.conn is not None:
            self._run(self.conn.close())
        self.loop.close()

    def enqueue_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.queries.enqueue("bench.noop", None)

        self._run(go())

    def enqueue_bulk(self, n: int) -> None:
        async def go() -> None:
            for start in range(0, n, BATCH):
                size = min(BATCH, n - start)
                await self.queries.enqueue(["bench.noop"] * size, [None] * size, [0] * size)

        self._run(go())

    def done(self) -> int:
        return self.count("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")

    def workers(self, concurrency: int) -> Workers:
        env = dict(os.environ, BENCH_DSN=self.db_dsn or "")
        command = [python(), "-m", "bench.apps.pgqueuer_app"]
        return Workers([command] * concurrency, env)

    def send_started(self, sent: float, path: str) -> None:
        payload = json.dumps({"sent": sent, "path": path}).encode()
        self._run(self.queries.enqueue("bench.started", payload))
