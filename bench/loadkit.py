"""What ``bench.load`` and ``bench.soak`` share: their own database, N live workers,
table sizes, the machine's load.

Each run gets a database of its own (created and dropped; nothing else on the server is
touched), or with ``--in-place`` a throwaway schema in the ``--dsn`` database (what the
smoke test uses, so that concurrent test runs never share a database).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Workers, drop_database, ensure_database, wait_until, with_database
from bench.systems.celeriac_sys import CeleriacSystem

TABLES = ("jobs", "results")
MIB = 1024 * 1024


def add_options(parser: argparse.ArgumentParser, database: str) -> None:
    """The options both scripts take: server, database, workers, JSON output."""
    parser.add_argument(
        "--dsn",
        default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="any database on the server; used to create the run's own database",
    )
    parser.add_argument("--database", default=database, help="created and dropped by the run")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="use the --dsn database itself, in a throwaway schema",
    )
    parser.add_argument("--workers", type=int, default=2, help="celeriac worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of each worker")
    parser.add_argument("--pool", default="prefork", help="-P of each worker")
    parser.add_argument("--json", help="also write the figures to this file")


@contextmanager
def celeriac_system(options: argparse.Namespace) -> Iterator[CeleriacSystem]:
    """celeriac's schema in the run's own database (or schema); dropped afterwards."""
    if options.in_place:
        dsn, schema = options.dsn, f"bench_{uuid.uuid4().hex[:8]}"
    else:
        ensure_database(options.dsn, options.database)
        dsn, schema = with_database(options.dsn, options.database), "bench"
    system = CeleriacSystem(dsn, schema, pool=options.pool)
    try:
        system.setup()
        yield system
    finally:
        system.teardown()
        if not options.in_place:
            drop_database(options.dsn, options.database)


def start_workers(system: CeleriacSystem, options: argparse.Namespace, wait: bool) -> Workers:
    """Start ``--workers`` workers; with ``wait``, return once every one is live."""
    workers = system.workers(options.concurrency, count=options.workers).start()
    if wait:
        control = system.app.control

        def live() -> bool:
            workers.check_alive()
            return len(control.live_nodes()) >= int(options.workers)

        try:
            wait_until(live, 120, 0.1, "workers to come up")
        except BaseException:
            workers.stop()
            raise
    return workers


def table_sizes(system: CeleriacSystem) -> dict[str, dict[str, float]]:
    """Per table: total size (heap + TOAST + indexes) and index size in MiB, rows, dead rows.

    Row counts are the statistics' estimates (``pg_stat_user_tables``): an exact
    count of a million-row table would cost more than the figure is worth here.
    """
    rows = system.query(
        "SELECT c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid), "
        "s.n_live_tup, s.n_dead_tup "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (system.schema, list(TABLES)),
    )
    return {
        name: {"total_mib": total / MIB, "index_mib": index / MIB, "live": live, "dead": dead}
        for name, total, index, live, dead in rows
    }


def format_sizes(label: str, sizes: dict[str, dict[str, float]]) -> str:
    parts = [
        f"{name} {s['total_mib']:7.1f} MiB (indexes {s['index_mib']:6.1f}, "
        f"~{s['live']:,.0f} live, ~{s['dead']:,.0f} dead)"
        for name, s in sorted(sizes.items())
    ]
    return f"  {label:<22} " + " | ".join(parts)


def machine() -> dict[str, Any]:
    """When, and how busy the machine was (the figures are only as good as that)."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
