"""Create and upgrade celeriac's schema: versioned, idempotent, safe to race.

Migrations are ``sql/migrations/NNNN_name.sql``, applied in order, each in its own
transaction under a transaction-level advisory lock, so two workers starting at once
serialize instead of colliding; the second one finds nothing left to do. The applied
versions are recorded in ``<schema>.schema_version``.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from celeriac.db.queries import with_schema
from celeriac.exceptions import SchemaError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    text: str


def migrations() -> list[Migration]:
    """The shipped migrations, in order."""
    found = []
    folder = resources.files("celeriac.db").joinpath("sql/migrations")
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name[:-4].partition("_")
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def schema_sql() -> str:
    """The canonical schema text (``sql/schema.sql``)."""
    return resources.files("celeriac.db").joinpath("sql/schema.sql").read_text(encoding="utf-8")


def lock_key(schema: str) -> int:
    """A stable 32-bit advisory-lock key for migrating this schema."""
    return zlib.crc32(f"celeriac-migrate:{schema}".encode()) & 0x7FFFFFFF


def migrate(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """Bring ``schema`` up to date; return the versions applied now (empty if current).

    Raises SchemaError when the schema is newer than this celeriac.
    """
    refuse_newer(conn, schema)
    applied_now: list[int] = []
    ident = sql.Identifier(schema)
    for migration in migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_version ("
                    "version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(ident)
            )
            if migration.version in _applied(conn, schema):
                continue
            conn.execute(with_schema(migration.text, schema))
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version, name) VALUES (%s, %s)").format(
                    ident
                ),
                (migration.version, migration.name),
            )
            applied_now.append(migration.version)
            logger.info(
                "applied migration %04d_%s to schema %s", migration.version, migration.name, schema
            )
    return applied_now


def _applied(conn: psycopg.Connection[Any], schema: str) -> set[int]:
    rows = conn.execute(
        sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
    ).fetchall()
    return {row[0] for row in rows}


def current_version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The newest applied version, or None when the schema does not exist."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (f"{sql.Identifier(schema).as_string(conn)}.schema_version",),
    ).fetchone()
    if not exists or not exists[0]:
        return None
    versions = _applied(conn, schema)
    return max(versions) if versions else None


def refuse_newer(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The schema's version; SchemaError when it is newer than this celeriac knows."""
    newest = migrations()[-1].version
    version = current_version(conn, schema)
    if version is not None and version > newest:
        raise SchemaError(
            f"schema {schema!r} is at version {version}, newer than this celeriac "
            f"(knows up to {newest}): upgrade celeriac"
        )
    return version


def ensure_current(conn: psycopg.Connection[Any], schema: str) -> None:
    """Migrate if any known migration is missing (not only the newest: a gap is applied
    too); refuse a schema newer than this celeriac knows."""
    if refuse_newer(conn, schema) is None:
        migrate(conn, schema)
    elif not {m.version for m in migrations()} <= _applied(conn, schema):
        migrate(conn, schema)


__all__ = [
    "Migration",
    "current_version",
    "ensure_current",
    "lock_key",
    "migrate",
    "migrations",
    "refuse_newer",
    "schema_sql",
]
