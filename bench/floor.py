"""The floor under two of issue 6's targets: what a Python client gets at best, per call.

    python -m bench.floor --calls 3000 --trips 500

No task queue runs here: the same Python drivers the systems use (psycopg, redis-py) send
the least a job needs, on the tables of ``bench/limit/schema.sql``, one call at a time:

* **publish**: one ``INSERT`` + ``NOTIFY`` per call, autocommit, a prepared statement —
  the floor under a durable ``delay()`` on PostgreSQL (and, with ``synchronous_commit``
  off, under ``delivery_mode="transient"``); the durable one again through libpq alone
  (psycopg's ``pgconn.exec_prepared``: what psycopg's Python layer costs) and through
  asyncpg (pgqueuer's driver); then one ``LPUSH`` of a 1 KB message to Redis, what a
  Celery+Redis ``delay()`` sends. Calls/s, wall and client CPU per call.
* **round trip**: a ``delay().get()`` made of bare SQL in one thread, no worker: publish
  (durable, NOTIFY), a second connection hears it and claims the job (``UPDATE …
  RETURNING``, durable), finishes it (``DELETE`` + result ``INSERT`` + ``NOTIFY``,
  durable), and the first connection hears that. Three durable commits and two
  notifications, no thread or process hop: the floor under a ``get()`` round trip that
  keeps every step durable. p50/p99 in ms.

Compare with ``python -m bench.run``'s Celery+Redis figures from the same machine: where
the floor is already at or past a target, no client code can meet it (bench/README.md).
Uses a throwaway schema of ``--dsn`` (the test database by default) and Redis database
13; drops what it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq, sql

from bench.common import latency_summary

HERE = Path(__file__).parent / "limit"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BODY = b"x" * 1024

PUBLISH = "WITH ins AS (INSERT INTO jobs (body) VALUES (%s) RETURNING queue) \
SELECT pg_notify('floor_jobs', queue) FROM ins"
PUBLISH_ASYNC = "WITH ins AS (INSERT INTO jobs (body) VALUES (%s) RETURNING queue) \
SELECT pg_notify('floor_jobs', queue), set_config('synchronous_commit', 'off', true) FROM ins"
CLAIM = "WITH next AS (SELECT id FROM jobs WHERE state = 'queued' AND queue = 'celery' \
AND eta <= now() ORDER BY queue, eta, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
UPDATE jobs SET state = 'running' FROM next WHERE jobs.id = next.id RETURNING jobs.id, jobs.body"
FINISH = "WITH done AS (DELETE FROM jobs WHERE id = %s RETURNING id), \
saved AS (INSERT INTO results (task_id, status, result) SELECT id, 'SUCCESS', 'null' FROM done) \
SELECT pg_notify('floor_results', id::text) FROM done"


@contextmanager
def _schema(dsn: str) -> Iterator[str]:
    """A throwaway schema holding bench/limit's tables; yields its name."""
    name = f"floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        conn.execute((HERE / "schema.sql").read_text())
        try:
            yield name
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _connect(dsn: str, schema: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}")


def _timed(calls: int, call: Any) -> dict[str, float]:
    for _ in range(min(200, calls)):  # warm: prepared statements, caches
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"rate": calls / wall, "wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6}


def publish_floor(dsn: str, calls: int) -> dict[str, dict[str, float]]:
    """One INSERT + NOTIFY per call, durable and asynchronous commits; the durable one
    also through libpq alone (psycopg's ``pgconn``, no cursor) and through asyncpg."""
    with _schema(dsn) as schema, _connect(dsn, schema) as conn:
        figures = {
            name: _timed(calls, lambda q=query: conn.execute(q, (BODY,), prepare=True))
            for name, query in (("durable", PUBLISH), ("async", PUBLISH_ASYNC))
        }
        figures["durable_libpq"] = _timed(calls, _libpq_publish(conn.pgconn))
        figures["durable_asyncpg"] = _asyncpg_publish(dsn, schema, calls)
        return figures


def _libpq_publish(pgconn: Any) -> Any:
    """The durable publish as one PQexecPrepared: what psycopg's Python layer costs."""
    pgconn.prepare(b"floor_publish", PUBLISH.replace("%s", "$1").encode())

    def call() -> None:
        result = pgconn.exec_prepared(b"floor_publish", [BODY], param_formats=[1])
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise RuntimeError(pgconn.get_error_message().decode(errors="replace"))

    return call


def _asyncpg_publish(dsn: str, schema: str, calls: int) -> dict[str, float] | None:
    """The durable publish through asyncpg, pgqueuer's driver (None if not installed)."""
    try:
        import asyncpg
    except ImportError:
        return None

    async def run() -> dict[str, float]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            statement = await conn.prepare(PUBLISH.replace("%s", "$1"))
            for _ in range(min(200, calls)):
                await statement.fetch(BODY)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                await statement.fetch(BODY)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await conn.close()
        return {"rate": calls / wall, "wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6}

    return asyncio.run(run())


def redis_floor(url: str, calls: int) -> dict[str, float] | None:
    """One LPUSH of a 1 KB message per call (None when Redis is not there)."""
    try:
        import redis
    except ImportError:
        return None
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        return None
    try:
        return _timed(calls, lambda: client.lpush("floor", BODY))
    finally:
        client.delete("floor")
        client.close()


def _heard(conn: psycopg.Connection[Any], timeout: float = 5.0) -> None:
    """Block until ``conn`` has a notification (the libpq socket turns readable)."""
    pgconn = conn.pgconn
    deadline = time.monotonic() + timeout
    while True:
        pgconn.consume_input()
        if pgconn.notifies() is not None:
            while pgconn.notifies() is not None:
                pass
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no notification")
        select.select([pgconn.socket], [], [], remaining)


def round_trip_floor(dsn: str, trips: int) -> dict[str, float]:
    """delay().get() in bare SQL: three durable commits and two notifications."""
    with (
        _schema(dsn) as schema,
        _connect(dsn, schema) as client,
        _connect(dsn, schema) as worker,
    ):
        client.execute("LISTEN floor_results")
        worker.execute("LISTEN floor_jobs")
        samples = []
        for n in range(trips + 50):
            began = time.perf_counter()
            client.execute(PUBLISH, (BODY,), prepare=True)
            _heard(worker)
            job = worker.execute(CLAIM, prepare=True).fetchone()
            assert job is not None
            worker.execute(FINISH, (job[0],), prepare=True)
            _heard(client)
            if n >= 50:  # the first ones warm the statements
                samples.append(time.perf_counter() - began)
    return latency_summary(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--trips", type=int, default=500)
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    figures: dict[str, Any] = publish_floor(options.dsn, options.calls)
    figures["redis_lpush"] = redis_floor(options.redis, options.calls)
    figures["round_trip_ms"] = round_trip_floor(options.dsn, options.trips)
    for name in ("durable", "async", "durable_libpq", "durable_asyncpg", "redis_lpush"):
        f = figures[name]
        if f is not None:
            print(
                f"publish {name:15s} {f['rate']:8,.0f} calls/s  wall {f['wall_us']:6.1f} us  "
                f"client CPU {f['cpu_us']:6.1f} us"
            )
    trip = figures["round_trip_ms"]
    print(
        f"round trip (3 durable commits, 2 NOTIFYs, no hops)  p50 {trip['p50']:.2f} ms  "
        f"p99 {trip['p99']:.2f} ms"
    )
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
