"""The claim stays an ordered index scan that stops after LIMIT entries, whatever the
statistics say about ``jobs``.

A queue table swings from empty to a large backlog between two ANALYZEs. Once a VACUUM
has seen it empty (autovacuum, or the maintenance leader after a drain), the planner
believes it holds no rows and plans the claim as a bitmap scan of every queued job plus a
sort: O(backlog) per claim (120 ms a claim with 80,000 queued, before the fix). The worker's
claim connection is set up by ``Broker.prepare_claims`` so that plan is never chosen."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from celeriac.db.queries import query


def _claim_plan(conn: psycopg.Connection[Any], schema: str) -> str:
    params = {"queue": "celery", "limit": 10, "worker_id": 1, "start": 10}
    with conn.transaction(force_rollback=True):  # EXPLAIN alone: nothing is claimed
        rows = conn.execute(b"EXPLAIN " + query("claim", schema), params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_claim_plan_ignores_an_empty_tables_statistics(app: Any, dsn: str) -> None:
    schema = app.database.schema
    app.ensure_schema()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM {}.jobs").format(sql.Identifier(schema)))  # seen empty
    noop = app.task(name="t.noop")(lambda *args: None)
    noop.delay_many([()] * 40000)  # (with 20,000 the index is small enough to win anyway)

    with psycopg.connect(dsn, autocommit=True) as plain:
        # the trap is real on this server: the planner sorts every queued job
        assert "Bitmap Heap Scan on jobs" in _claim_plan(plain, schema)
    with psycopg.connect(dsn, autocommit=True) as claims:
        app.broker.prepare_claims(claims)
        plan = _claim_plan(claims, schema)
    assert "Index Scan using jobs_claim on jobs" in plan, plan
    assert "Bitmap" not in plan and "Seq Scan" not in plan, plan
