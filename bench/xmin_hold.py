"""A long transaction holds back vacuum (xmin) while tasks flow: throughput and table sizes.

Runs on a private PostgreSQL (never the shared one: holding xmin there would hurt
everybody). Three phases of TASKS tasks each, drained by two threads-pool workers:
baseline; while a REPEATABLE READ transaction holds its snapshot for at least HOLD
seconds; after it ends (plus a VACUUM, as autovacuum would). Prints throughput per phase,
the jobs/results sizes and dead tuples after each phase.

    .venv/bin/python bench/xmin_hold.py [--tasks 20000] [--hold 75]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import sql  # noqa: E402

from tests.faults.cluster import Cluster  # noqa: E402
from tests.faults.conftest import HERE, Worker  # noqa: E402

SCHEMA = "xmin_bench"


def sizes(cluster: Cluster) -> dict[str, Any]:
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(relid), n_dead_tup "
            "FROM pg_stat_user_tables WHERE schemaname = %s AND relname IN ('jobs', 'results')",
            (SCHEMA,),
        ).fetchall()
    return {name: f"{size / 1024:.0f} KiB, {dead} dead" for name, size, dead in rows}


def drain(cluster: Cluster, app: Any, count: int, tag: str) -> float:
    """Publish ``count`` tasks in bulk and wait until every outcome is stored; tasks/s."""
    work = app.tasks["faultproj.work"]
    began = time.monotonic()
    for start in range(0, count, 1000):
        work.delay_many([(n,) for n in range(start, min(count, start + 1000))])
    query = sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(SCHEMA))
    with cluster.connect() as conn:
        while conn.execute(query).fetchone()[0]:  # type: ignore[index]
            time.sleep(0.2)
    rate = count / (time.monotonic() - began)
    print(f"{tag:<10} {count} tasks  {rate:8.0f} tasks/s  {sizes(cluster)}", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--hold", type=float, default=75.0)
    options = parser.parse_args()
    cluster = Cluster()
    workers: list[Worker] = []
    try:
        cluster.init()
        cluster.start()
        with cluster.connect("postgres") as conn:
            conn.execute("CREATE DATABASE faults")
        os.environ["FAULTS_DSN"] = os.environ["CELERIAC_BROKER_URL"] = cluster.url()
        os.environ["CELERIAC_SCHEMA"] = SCHEMA
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        sys.path.insert(0, str(HERE))
        import faultproj  # type: ignore[import-not-found]

        app = faultproj.app
        app.ensure_schema()
        for i in (1, 2):
            worker = Worker(
                ["-P", "threads", "-c", "4", "-n", f"x{i}@%h"], env, cluster.root / f"w{i}.log"
            )
            workers.append(worker)
            worker.wait_for_line(" ready.")
        base = drain(cluster, app, options.tasks, "baseline")
        holder = cluster.connect()
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pg_class")  # takes the snapshot
        began = time.monotonic()
        held = drain(cluster, app, options.tasks, "held")
        while time.monotonic() - began < options.hold:
            held = min(held, drain(cluster, app, options.tasks // 4, "held"))
        holder.execute("ROLLBACK")
        holder.close()
        with cluster.connect() as conn:
            conn.execute(sql.SQL("VACUUM {}.jobs").format(sql.Identifier(SCHEMA)))
        after = drain(cluster, app, options.tasks, "after")
        print(
            f"held for {time.monotonic() - began:.0f} s: slowest held phase "
            f"{held / base:.2f}x baseline, after release {after / base:.2f}x baseline"
        )
    finally:
        for worker in workers:
            worker.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
