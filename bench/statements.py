"""What PostgreSQL does per task, statement by statement (``pg_stat_statements``).

    python -m bench.statements --systems celeriac,pgqueuer --tasks 20000 --roundtrips 300

For each PostgreSQL system (celeriac, procrastinate, pgqueuer), in its own database
``<prefix>_<system>`` (created and dropped): a drain of ``--tasks`` queued no-op tasks by
the system's documented workers, and, for systems with results, ``--roundtrips``
``delay().get()`` round trips one after another. Before each it resets the statistics
of that database; after it prints, per task, the statements' server time, their calls,
the WAL they wrote and the buffers they touched, then the statements by time.

Server time is ``total_exec_time``: the execution of the statements only. The COMMIT
that follows an autocommit statement (its WAL flush) and the time on the wire are not
in it; ``bench.timeline`` and ``bench.floor`` measure those.

``pg_stat_statements`` must be loaded; it is not by default, and loading it needs a
server restart::

    psql -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    pg_ctlcluster 15 main restart     # (ALTER SYSTEM RESET ... and restart to undo)

The script creates the extension in each database it makes. The benchmark's own polls
(how many tasks are done) are left out of the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.run import Databases, make_system
from bench.systems.base import System
from bench.workloads import POLL

SYSTEMS = ("celeriac", "procrastinate", "pgqueuer")
STATS = """
SELECT s.queryid, s.query, s.calls, s.total_exec_time, s.rows, s.wal_bytes,
       s.shared_blks_hit + s.shared_blks_read + s.shared_blks_dirtied AS blocks
FROM pg_stat_statements AS s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def loaded(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    return row is not None and "pg_stat_statements" in str(row[0])


def reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "SELECT pg_stat_statements_reset(0, "
        "(SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
    )


def read(conn: psycopg.Connection[Any], skip: set[int]) -> list[dict[str, Any]]:
    rows = conn.execute(STATS).fetchall()
    keys = ("queryid", "query", "calls", "ms", "rows", "wal_bytes", "blocks")
    stats = [dict(zip(keys, row, strict=True)) for row in rows]
    return [s for s in stats if s["queryid"] not in skip and "pg_stat_statements" not in s["query"]]


_VALUES = re.compile(
    r"%\(\w+\)[sb]|\$\d+|'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|\b(?:true|false|null)\b", re.I
)


def _shape(text: str) -> str:
    """A statement without its parameters, constants and layout (pg_stat_statements
    shows constants as $n, as it shows parameters)."""
    return re.sub(r"\s+", " ", _VALUES.sub("?", text)).strip()


def celeriac_names(schema: str) -> dict[str, str]:
    """celeriac's statements by their shape: the name of each (``-- name:`` in its .sql)."""
    from celeriac.broker import without_on_conflict
    from celeriac.db.queries import names, query

    known = {_shape(query(name, schema).decode()): name for name in names()}
    for name in ("publish", "publish_one", "publish_batch"):  # their first try (Broker._write)
        known[_shape(without_on_conflict(query(name, schema)).decode())] = name
    return known


def label(text: str, known: dict[str, str], width: int = 72) -> str:
    """The statement's name when it is one of ``known``, else its text on one line."""
    shape = _shape(text)
    if shape in known:
        return known[shape]
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def observer_queries(system: System, conn: psycopg.Connection[Any]) -> set[int]:
    """The ids of the statements the benchmark itself runs to watch progress."""
    reset(conn)
    system.done()
    return {s["queryid"] for s in read(conn, set())}


def summary(stats: list[dict[str, Any]], tasks: int, known: dict[str, str]) -> dict[str, Any]:
    total = sum(s["ms"] for s in stats) or 1e-9
    return {
        "tasks": tasks,
        "server_us_per_task": sum(s["ms"] for s in stats) * 1000 / tasks,
        "calls_per_task": sum(s["calls"] for s in stats) / tasks,
        "wal_bytes_per_task": sum(int(s["wal_bytes"]) for s in stats) / tasks,
        "blocks_per_task": sum(s["blocks"] for s in stats) / tasks,
        "statements": [
            {
                "query": label(s["query"], known),
                "calls_per_task": s["calls"] / tasks,
                "mean_us": s["ms"] * 1000 / max(s["calls"], 1),
                "share": s["ms"] / total,
                "rows_per_call": s["rows"] / max(s["calls"], 1),
                "wal_bytes_per_call": int(s["wal_bytes"]) / max(s["calls"], 1),
            }
            for s in sorted(stats, key=lambda s: -s["ms"])
        ],
    }


class Probe:
    """The statistics of one system's database, less the benchmark's own statements."""

    def __init__(self, system: System, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.skip = observer_queries(system, conn)
        schema = getattr(system, "schema", None) if system.name == "celeriac" else None
        self.known = celeriac_names(schema) if schema else {}

    def reset(self) -> None:
        reset(self.conn)

    def summary(self, tasks: int) -> dict[str, Any]:
        return summary(read(self.conn, self.skip), tasks, self.known)


def drain(system: System, probe: Probe, n: int, c: int) -> Any:
    system.reset()
    system.fill(n)
    probe.reset()
    workers = system.workers(c).start()
    try:
        while system.done() < n:
            workers.check_alive()
            time.sleep(POLL)
    finally:
        workers.stop()
    return probe.summary(n)


def roundtrips(system: System, probe: Probe, n: int) -> Any:
    system.reset()
    workers = system.workers(2).start()
    try:
        system.roundtrip(-1)  # warm-up: workers ready, connections open
        probe.reset()
        for i in range(n):
            assert system.roundtrip(i) == i
    finally:
        workers.stop()
    return probe.summary(n)


def show(title: str, figures: dict[str, Any], top: int) -> None:
    print(
        f"{title}: server {figures['server_us_per_task']:.1f} us, "
        f"{figures['calls_per_task']:.3f} statements, "
        f"{figures['wal_bytes_per_task']:,.0f} WAL bytes, "
        f"{figures['blocks_per_task']:.1f} buffers a task"
    )
    print("  share  calls/task  mean us  rows/call  WAL B/call  statement")
    for s in figures["statements"][:top]:
        print(
            f"  {s['share']:5.1%}  {s['calls_per_task']:10.4f}  {s['mean_us']:7.1f}  "
            f"{s['rows_per_call']:9.1f}  {s['wal_bytes_per_call']:10,.0f}  {s['query']}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--tasks", type=int, default=20_000, help="drained tasks")
    p.add_argument("--concurrency", type=int, default=2, help="task slots in all")
    p.add_argument("--roundtrips", type=int, default=300, help="delay().get() round trips")
    p.add_argument("--top", type=int, default=8, help="statements shown per workload")
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--prefix", default="celeriac_bench_statements")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    args.in_place, args.keep = False, False
    names = [name for name in args.systems.split(",") if name]
    if unknown := [name for name in names if name not in SYSTEMS]:
        raise SystemExit(f"not a PostgreSQL system: {', '.join(unknown)}; choose from {SYSTEMS}")
    if not loaded(args.dsn):
        raise SystemExit(
            "pg_stat_statements is not loaded on this server: ALTER SYSTEM SET "
            "shared_preload_libraries = 'pg_stat_statements', restart it, and run again "
            "(see this module's docstring)"
        )
    dbs, out = Databases(args), {}
    try:
        for name in names:
            system = make_system(name, dbs, in_place=False)
            system.setup()
            assert system.db_dsn is not None
            try:
                with psycopg.connect(system.db_dsn, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    probe = Probe(system, conn)
                    out[name] = {"drain": drain(system, probe, args.tasks, args.concurrency)}
                    show(f"{name}, drain of {args.tasks:,}", out[name]["drain"], args.top)
                    if system.has_results and args.roundtrips:
                        trips = roundtrips(system, probe, args.roundtrips)
                        out[name]["roundtrip"] = trips
                        show(f"{name}, {args.roundtrips} delay().get()", trips, args.top)
            finally:
                system.teardown()
    finally:
        dbs.drop()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
