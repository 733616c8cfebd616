"""An app gives back every connection it opened when closed (no leaks across tests)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from celeriac import Celery


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND client_port IS NOT NULL "
            "AND client_addr IS NOT NULL AND backend_type = 'client backend' "
            "AND application_name = 'celeriac-leak-probe'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_close_releases_pool_and_result_listener(dsn: str, schema: str) -> None:
    url = dsn + ("&" if "?" in dsn else "?") + "application_name=celeriac-leak-probe"
    app: Any = Celery("leaks", broker=url, celeriac_schema=schema)

    @app.task(name="leaks.noop")
    def noop() -> None:
        return None

    task = noop
    result = task.delay()
    app.backend.store_state(result.id, "SUCCESS", 1)
    assert result.get(timeout=5) == 1  # starts the result listener
    assert _backends(dsn) >= 2
    app.close()
    # a backend exits a moment after its client closed the socket: allow it that moment
    deadline = time.monotonic() + 5
    while _backends(dsn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _backends(dsn) == 0
