"""celeriac's schema, created by ``manage.py migrate`` from celeriac's own SQL files.

No DDL is copied here: the Django migration calls :func:`celeriac.db.migrate.migrate`
on Django's connection, which applies ``celeriac/db/sql/migrations/*.sql`` in order.
"""

from __future__ import annotations

from psycopg import sql


def schema_name() -> str:
    """celeriac's schema: the current app's ``celeriac_schema`` setting."""
    from celeriac._state import get_current_app

    return str(get_current_app().conf.celeriac_schema)


def ensure_schema(using: str = "default") -> None:
    """Create or upgrade the schema on Django's connection ``using`` (idempotent)."""
    from django.db import connections

    from celeriac.db.migrate import ensure_current

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    # celeriac's migrator runs each SQL migration in its own transaction: Django's
    # connection must be in autocommit mode (the Django migration is non-atomic for this).
    ensure_current(connection.connection, schema_name())


def drop_schema(using: str = "default") -> None:
    """Drop celeriac's schema (``migrate celeriac zero``): every job and result goes."""
    from django.db import connections

    connection = connections[using]
    connection.ensure_connection()
    ident = sql.Identifier(schema_name())
    connection.connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))


__all__ = ["drop_schema", "ensure_schema", "schema_name"]
