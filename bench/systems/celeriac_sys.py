"""celeriac: PostgreSQL broker and result backend; one prefork worker (``celeriac``), or
as many ``-P solo`` workers as the workload's concurrency (``celeriac_solo``)."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

from bench.apps import celeriac_app
from bench.common import Workers, python
from bench.systems.base import System

BATCH = 5000


class CeleriacSystem(System):
    """celeriac in schema ``schema`` of database ``dsn``."""

    name = "celeriac"
    label = "celeriac"
    has_transient = True  # delivery_mode="transient": asynchronous commit

    def __init__(self, dsn: str, schema: str = "bench", pool: str = "prefork") -> None:
        self.db_dsn = dsn
        self.schema = schema
        self.pool = pool
        if pool == "solo":  # one process per slot, each its own worker: as pgqueuer runs
            self.name, self.label = "celeriac_solo", "celeriac -P solo"
            self.workloads = ("drain", "latency")  # the rest is the client's, or prefork's
        self.app = celeriac_app.make_app(dsn, schema)
        self.has_chords = _has_chord()

    def setup(self) -> None:
        self.app.ensure_schema()
        self.reset()

    def reset(self) -> None:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                    "AND tablename <> 'schema_version'",
                    (self.schema,),
                )
            ]
            if tables:
                names = sql.SQL(", ").join(sql.Identifier(self.schema, t) for t in tables)
                conn.execute(sql.SQL("TRUNCATE {}").format(names))

    def close_clients(self) -> bool:
        self.app.close()
        return True

    def teardown(self) -> None:
        self.close_poll()
        self.app.close()
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def _task(self, name: str):  # type: ignore[no-untyped-def]
        return self.app.tasks[f"bench.{name}"]

    def enqueue_one(self, n: int) -> None:
        noop = self._task("noop")
        for _ in range(n):
            noop.delay()

    def enqueue_transient(self, n: int) -> None:
        noop = self._task("noop")
        for _ in range(n):
            noop.apply_async(delivery_mode="transient")

    def enqueue_bulk(self, n: int) -> None:
        noop = self._task("noop")
        for start in range(0, n, BATCH):
            noop.delay_many([()] * min(BATCH, n - start))

    def done(self) -> int:
        return self.count(f'SELECT count(*) FROM "{self.schema}".results')

    def workers(self, concurrency: int, count: int = 1) -> Workers:
        """``count`` worker processes (each its own process group) of ``concurrency`` slots;
        with ``-P solo``, ``concurrency`` workers of one slot each."""
        if self.pool == "solo":
            concurrency, count = 1, concurrency * count
        env = dict(os.environ, BENCH_DSN=self.db_dsn or "", BENCH_SCHEMA=self.schema)
        command = [
            python(),
            "-m",
            "celeriac",
            "-A",
            "bench.apps.celeriac_app",
            "worker",
            "-l",
            "warning",
            "-c",
            str(concurrency),
            "-P",
            self.pool,
        ]
        if count == 1:
            return Workers([command], env)
        return Workers([[*command, "-n", f"bench{n}@%h"] for n in range(1, count + 1)], env)

    def send_started(self, sent: float, path: str) -> None:
        self._task("started").delay(sent, path)

    def roundtrip(self, value: int) -> int:
        return int(self._task("echo").delay(value).get(timeout=30))

    def send_fanout(self, request: int, parts: int, seconds: float, path: str) -> None:
        from celeriac import chord  # type: ignore[attr-defined]

        sleepy, combine = self._task("sleepy"), self._task("combine")
        chord([sleepy.s(seconds) for _ in range(parts)])(combine.s(request, path))


def _has_chord() -> bool:
    import celeriac

    return hasattr(celeriac, "chord")
