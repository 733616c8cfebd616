"""The schema: migrations equal schema.sql, idempotent, race-safe, version-checked;
unreachable databases give a clear error; expired results are pruned."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from celeriac import Celery, states
from celeriac.db import migrate
from celeriac.db.queries import with_schema
from celeriac.exceptions import OperationalError, SchemaError
from celeriac.worker.maintenance import Maintenance

CATALOG = """
SELECT 'column', c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || ' null=' || (NOT a.attnotnull)::text
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
       || ' identity=' || a.attidentity::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', indexname, replace(indexdef, quote_ident(%(schema)s) || '.', '')
FROM pg_indexes WHERE schemaname = %(schema)s
UNION ALL
SELECT 'constraint', c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
"""


def catalog(conn: psycopg.Connection[Any], schema: str) -> set[tuple[str, str, str]]:
    rows = conn.execute(CATALOG, {"schema": schema}).fetchall()
    return {row for row in rows if not row[1].startswith("schema_version")}


@pytest.fixture
def schemas(dsn: str) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def new_schema(schemas: list[str]) -> str:
    schemas.append(f"t_{uuid.uuid4().hex[:12]}")
    return schemas[-1]


def test_migrations_in_order_give_exactly_schema_sql(dsn: str, schemas: list[str]) -> None:
    migrated, canonical = new_schema(schemas), new_schema(schemas)
    with psycopg.connect(dsn, autocommit=True) as conn:
        applied = migrate.migrate(conn, migrated)
        assert applied == [m.version for m in migrate.migrations()]
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(canonical)))
        conn.execute(with_schema(migrate.schema_sql(), canonical))
        got, expected = catalog(conn, migrated), catalog(conn, canonical)
    assert expected, "the catalog query found nothing"
    assert got == expected, (
        f"only in migrations: {got - expected}; only in schema.sql: {expected - got}"
    )


def test_migrate_is_idempotent(dsn: str, schemas: list[str]) -> None:
    schema = new_schema(schemas)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate.migrate(conn, schema)
        assert migrate.migrate(conn, schema) == []
        migrate.ensure_current(conn, schema)
        assert migrate.current_version(conn, schema) == migrate.migrations()[-1].version


def test_concurrent_migrations_both_succeed(dsn: str, schemas: list[str]) -> None:
    schema = new_schema(schemas)
    barrier = threading.Barrier(4)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait()
                applied.append(migrate.migrate(conn, schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v for versions in applied for v in versions) == [
        m.version for m in migrate.migrations()
    ]


def test_newer_schema_is_refused(dsn: str, schemas: list[str]) -> None:
    schema = new_schema(schemas)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate.migrate(conn, schema)
        conn.execute(
            sql.SQL("INSERT INTO {}.schema_version (version, name) VALUES (9999, 'future')").format(
                sql.Identifier(schema)
            )
        )
        with pytest.raises(SchemaError, match="upgrade celeriac"):
            migrate.ensure_current(conn, schema)


def test_a_missing_middle_migration_is_applied(dsn: str, schemas: list[str]) -> None:
    """A schema whose newest version is current but which lacks an older one gets it."""
    schema = new_schema(schemas)
    ident = sql.Identifier(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate.migrate(conn, schema)
        conn.execute(sql.SQL("DROP TABLE {}.chords").format(ident))
        conn.execute(sql.SQL("DELETE FROM {}.schema_version WHERE name = 'chords'").format(ident))
        migrate.ensure_current(conn, schema)
        row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.chords",)).fetchone()
    assert row is not None and row[0] is not None


def test_app_migrates_on_first_use(app: Any) -> None:
    assert app.AsyncResult("x").state == states.PENDING
    with app.database.connection() as conn:
        assert migrate.current_version(conn, app.database.schema) is not None


def test_unreachable_database_is_a_clear_error_with_the_password_masked() -> None:
    app = Celery("down", broker="postgresql://someone:s3cret@127.0.0.1:1/nowhere")

    @app.task
    def noop() -> None:
        return None

    with pytest.raises(OperationalError) as info:
        noop.delay()
    message = str(info.value)
    assert "s3cret" not in message
    assert "127.0.0.1" in message and "someone:**@" in message
    app.close()


def test_expired_results_are_pruned(app: Any, dsn: str, schema: str) -> None:
    keeper = Celery("keep", broker=dsn, celeriac_schema=schema)
    app.conf.result_expires = dt.timedelta(milliseconds=1)
    app.backend.store_state("old", states.SUCCESS, 1)
    keeper.backend.store_state("fresh", states.SUCCESS, 2)
    with app.database.connection() as conn:
        conn.execute("SELECT pg_sleep(0.01)")
    maintenance = Maintenance(app, "m@test", 1.0, 30.0, 0.001)
    maintenance.round()
    assert app.AsyncResult("old").state == states.PENDING
    assert keeper.AsyncResult("fresh").get(timeout=1) == 2
    keeper.close()


def test_migrate_command(dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from celeriac.cli import cli

    monkeypatch.setenv("CELERIAC_SCHEMA", schema)
    runner = CliRunner()
    first = runner.invoke(cli, ["-b", dsn, "migrate"])
    assert first.exit_code == 0, first.output
    assert f"schema {schema}: applied" in first.output
    again = runner.invoke(cli, ["-b", dsn, "migrate"])
    assert again.exit_code == 0 and "up to date" in again.output
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.schema_version (version, name) VALUES (9999, 'future')").format(
                sql.Identifier(schema)
            )
        )
    newer = runner.invoke(cli, ["-b", dsn, "migrate"])
    assert newer.exit_code == 1 and "upgrade celeriac" in newer.output
