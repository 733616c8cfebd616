"""What one durable ``delay()``'s publish costs, part by part (issue 6's enqueue target).

    python -m bench.publish_parts --calls 2000 --rounds 3

celeriac's publish statement, with the parameters of a real no-op ``delay()`` (built by
celeriac's ``MessageBuilder`` as ``delay()`` builds them, a fresh task id per call), sent
one durable call at a time in these variants:

* **as sent**: through the psycopg cursor kept on the connection, as ``delay()`` sends it;
* **libpq**: the same statement and parameters through ``pgconn.exec_prepared``, the
  parameters dumped by psycopg's own ``Transformer``: what psycopg's cursor layer costs;
* **no headers**, **no results probe**, **no NOTIFY**: the statement without that part:
  what the part costs PostgreSQL and the commit.

The variants alternate within each round, so the machine's drift touches them alike.
Prints wall and client CPU per call and WAL bytes per call. Uses a throwaway schema of
``--dsn`` and drops it.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg._queries import PostgresQuery
from psycopg.adapt import Transformer

from bench.apps.celeriac_app import make_app
from celeriac.broker import without_on_conflict
from celeriac.db.queries import query
from celeriac.publish import MessageBuilder

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

Variant = Callable[[dict[str, Any]], None]


def _parts(statement: str, schema: str) -> dict[str, str]:
    """The statement and its variants, each without one part (checked to differ)."""
    probe = (
        f'WHERE NOT EXISTS (SELECT 1 FROM "{schema}".results AS r '
        "WHERE r.task_id = %(task_id)s::text)"
    )
    cuts = {
        "no headers": ("%(headers)s::jsonb", "'{}'::jsonb"),
        "no results probe": (probe, ""),
        "no NOTIFY": ("pg_notify(%(channel)s, ins.queue)", "1"),
    }
    variants = {"as sent": statement}
    for name, (part, replacement) in cuts.items():
        assert statement.count(part) == 1, f"the publish statement changed: {name}"
        variants[name] = statement.replace(part, replacement)
    return variants


def _through_cursor(conn: psycopg.Connection[Any], statement: str) -> Variant:
    cursor = conn.cursor()

    def call(params: dict[str, Any]) -> None:
        cursor.execute(statement, params, prepare=True)

    return call


def _through_libpq(
    conn: psycopg.Connection[Any], statement: str, sample: dict[str, Any]
) -> Variant:
    converted = PostgresQuery(Transformer(conn))
    converted.convert(statement, sample)
    conn.pgconn.prepare(b"bench_publish_parts", converted.query, converted.types)

    def call(params: dict[str, Any]) -> None:
        converted.dump(params)
        result = conn.pgconn.exec_prepared(
            b"bench_publish_parts", converted.params, converted.formats
        )
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise RuntimeError(conn.pgconn.get_error_message().decode(errors="replace"))

    return call


def _lsn(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert row is not None
    return row[0]


def _timed(
    conn: psycopg.Connection[Any], call: Variant, params: dict[str, Any], n: int
) -> dict[str, float]:
    def fresh() -> dict[str, Any]:
        return {**params, "task_id": str(uuid.uuid4())}

    for _ in range(min(200, n)):  # warm: the prepared statement, caches
        call(fresh())
    batch = [fresh() for _ in range(n)]
    start_lsn = _lsn(conn)
    cpu, wall = time.process_time(), time.perf_counter()
    for one in batch:
        call(one)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start_lsn,)).fetchone()
    wal = float(row[0]) if row else 0.0
    return {"wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6, "wal_bytes": wal / n}


def measure(dsn: str, calls: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    schema = f"bench_pub_{uuid.uuid4().hex[:8]}"
    app = make_app(dsn, schema)
    try:
        noop = app.tasks["bench.noop"]
        message = MessageBuilder(app).build(noop.name, (), {}, options={}, task_type=noop)
        params = {**app.broker._one_params(message), "sort_key": None, "durable": True}
        statement = without_on_conflict(query("publish_one", schema)).decode()
        with psycopg.connect(dsn, autocommit=True) as conn:
            variants = {
                name: _through_cursor(conn, text)
                for name, text in _parts(statement, schema).items()
            }
            variants["libpq"] = _through_libpq(conn, statement, params)
            figures: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, call in variants.items():
                    figures[name].append(_timed(conn, call, params, calls))
                    conn.execute(sql.SQL("TRUNCATE {}.jobs").format(sql.Identifier(schema)))
        return figures
    finally:
        app.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    figures = measure(options.dsn, options.calls, options.rounds)
    for name, runs in figures.items():
        walls = " / ".join(f"{r['wall_us']:5.0f}" for r in runs)
        cpus = " / ".join(f"{r['cpu_us']:4.0f}" for r in runs)
        wal = sum(r["wal_bytes"] for r in runs) / len(runs)
        print(f"{name:17s} wall us {walls}   client CPU us {cpus}   WAL {wal:5.0f} B a call")
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
