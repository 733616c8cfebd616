"""The maintenance leader VACUUMs the churning tables once their dead rows pass
``celeriac_vacuum_threshold`` — whether or not autovacuum runs (it is off on this test
server, which is exactly when a queue's claim index fills with dead entries)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from celeriac.worker.maintenance import Maintenance


def _dead(app: Any, table: str) -> tuple[int, Any]:
    with app.database.connection() as conn:
        row = conn.execute(
            "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = %s",
            (app.database.schema, table),
        ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _dead_rows_reported(app: Any, table: str, count: int) -> None:
    """Wait for the statistics to show ``count`` dead rows (a backend reports its counters
    when it exits; the collector is asynchronous to our close)."""
    deadline = time.monotonic() + 10
    while _dead(app, table)[0] < count:
        assert time.monotonic() < deadline, f"statistics never showed {count} dead rows"
        time.sleep(0.05)


def test_leader_vacuums_jobs_past_the_threshold(app: Any, dsn: str) -> None:
    noop = app.task(name="t.noop")(lambda *args: None)
    noop.delay_many([(i,) for i in range(300)])
    with psycopg.connect(dsn, autocommit=True) as conn:  # 300 dead rows, as a drain leaves
        conn.execute(sql.SQL("DELETE FROM {}.jobs").format(sql.Identifier(app.database.schema)))
    _dead_rows_reported(app, "jobs", 300)
    maintenance = Maintenance(app, "m@test", 1.0, 30.0, 60.0)
    with app.database.connection() as conn:
        maintenance.vacuum_threshold = 1000
        assert maintenance.vacuum(conn) == []  # below the threshold: left alone
        assert _dead(app, "jobs")[1] is None
        maintenance.vacuum_threshold = 200
        assert maintenance.vacuum(conn) == ["jobs"]
    dead, vacuumed_at = _dead(app, "jobs")
    assert dead == 0 and vacuumed_at is not None


def test_leader_round_vacuums_and_zero_turns_it_off(app: Any, dsn: str) -> None:
    noop = app.task(name="t.noop")(lambda *args: None)
    noop.delay_many([(i,) for i in range(50)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DELETE FROM {}.jobs").format(sql.Identifier(app.database.schema)))
    _dead_rows_reported(app, "jobs", 50)
    app.conf.celeriac_vacuum_threshold = 0
    Maintenance(app, "off@test", 1.0, 30.0, 60.0).round()
    assert _dead(app, "jobs")[1] is None
    app.conf.celeriac_vacuum_threshold = 10
    Maintenance(app, "on@test", 1.0, 30.0, 60.0).round()
    assert _dead(app, "jobs")[1] is not None
