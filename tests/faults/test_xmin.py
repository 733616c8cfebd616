"""A long transaction holds back vacuum (xmin) while tasks flow: throughput stays within a
stated factor of the baseline, and once it ends the jobs table is vacuumed back instead of
growing without bound. (bench/xmin_hold.py is the long version, with figures.)"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.faults.cluster import Cluster
from tests.faults.conftest import report

pytestmark = pytest.mark.faults

BATCH = 600
HOLD = 6.0  # seconds; the bench holds 75
FACTOR = 10  # generous: two shared cores; the bench measures the real ratio


def drain(conn: psycopg.Connection[Any], schema: str, work: Any, count: int) -> float:
    """Publish ``count`` tasks in one statement, wait until the queue is empty; tasks/s."""
    began = time.monotonic()
    work.delay_many([(n,) for n in range(count)])
    query = sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(schema))
    while conn.execute(query).fetchone()[0]:  # type: ignore[index]
        time.sleep(0.05)
    return count / (time.monotonic() - began)


def jobs_size(conn: psycopg.Connection[Any], schema: str) -> int:
    """Bytes in the main forks of the jobs table, its TOAST table and all their indexes.

    Not pg_total_relation_size: that counts the free-space and visibility maps too, and the
    first VACUUM (ours, or autovacuum's if it gets there first) creates them, so it could
    grow by a few pages across a VACUUM that freed everything."""
    name = sql.SQL("{}.jobs").format(sql.Identifier(schema)).as_string(conn)
    row = conn.execute(
        """
        WITH rel AS (
            SELECT c.oid FROM pg_class c WHERE c.oid = %(t)s::regclass
            UNION ALL
            SELECT c.reltoastrelid FROM pg_class c
             WHERE c.oid = %(t)s::regclass AND c.reltoastrelid <> 0
        )
        SELECT sum(pg_relation_size(r.oid, 'main'))
             + coalesce((SELECT sum(pg_relation_size(i.indexrelid, 'main'))
                           FROM pg_index i JOIN rel ON i.indrelid = rel.oid), 0)
          FROM rel r
        """,
        {"t": name},
    ).fetchone()
    return int(row[0])  # type: ignore[index]


def test_long_transaction_holding_xmin(
    cluster: Cluster, fapp: Any, fschema: str, start_worker: Any
) -> None:
    work = fapp.tasks["faultproj.work"]
    for i in (1, 2):
        start_worker("-P", "threads", "-c", "4", "-n", f"xmin{i}@%h")
    with cluster.connect() as conn:
        drain(conn, fschema, work, 50)  # warm up
        base = drain(conn, fschema, work, BATCH)
        holder = cluster.connect()
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pg_class")  # the snapshot that holds xmin
        began, rates = time.monotonic(), []
        # at least 3 batches while held, so the held table has room for more than one
        # batch: on a loaded machine one batch can take the whole HOLD, and then the
        # batch after VACUUM may need as many pages as the held table has
        while time.monotonic() - began < HOLD or len(rates) < 3:
            rates.append(drain(conn, fschema, work, BATCH))
        held_size = jobs_size(conn, fschema)
        holder.execute("ROLLBACK")
        holder.close()
        conn.execute(sql.SQL("VACUUM {}.jobs").format(sql.Identifier(fschema)))
        vacuumed = jobs_size(conn, fschema)
        after = drain(conn, fschema, work, BATCH)
        after_size = jobs_size(conn, fschema)
    report(
        "xmin-held",
        tasks=BATCH * (len(rates) + 2) + 50,
        baseline_per_s=base,
        slowest_held_per_s=min(rates),
        after_per_s=after,
        held_jobs_kib=held_size // 1024,
        vacuumed_jobs_kib=vacuumed // 1024,
        after_jobs_kib=after_size // 1024,
    )
    assert min(rates) * FACTOR >= base
    assert vacuumed <= held_size and after_size <= held_size
