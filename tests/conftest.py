"""Shared fixtures: a real PostgreSQL (never mocked), one fresh schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

# Property tests check behaviour, not speed: on a slow or shared VM one example can take
# longer than hypothesis's default 200 ms deadline (seen: 347 ms decoding a pickle).
settings.register_profile("celeriac", deadline=None)
settings.load_profile("celeriac")

DSN = os.environ.get("CELERIAC_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def dsn() -> str:
    """The test database; in CI a missing database is a failure, not a skip."""
    try:
        with psycopg.connect(DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {DSN}: {exc}")
    return DSN


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def app(dsn: str, schema: str) -> Iterator[object]:
    """A celeriac app on the test database, in its own schema."""
    from celeriac import Celery

    application = Celery("tests", broker=dsn, celeriac_schema=schema)
    yield application
    application.close()
