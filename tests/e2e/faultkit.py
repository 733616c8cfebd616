"""Helpers for the worker fault tests: workers with ``faults_tasks`` loaded, awaiting
files and rows (events, not sleeps), and reading the job table directly."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

T = TypeVar("T")

HERE = Path(__file__).parent


def wait_until(check: Callable[[], T], timeout: float = 20, what: str = "condition") -> T:
    """Poll ``check`` (cheap, side-effect free) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    """The lines of a marker file (empty when it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []


def wait_lines(path: Path, count: int, timeout: float = 20) -> list[str]:
    """Wait until ``path`` has at least ``count`` lines."""
    return wait_until(
        lambda: found if len(found := lines(path)) >= count else None,
        timeout,
        f"{count} line(s) in {path.name}",
    )


def job_rows(dsn: str, schema: str) -> list[dict[str, Any]]:
    """Every row of the job table, as dicts."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            sql.SQL(
                "SELECT id, task_id, task_name, state, attempt, error, worker_id FROM {}.jobs "
                "ORDER BY id"
            ).format(sql.Identifier(schema))
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def result_row(dsn: str, schema: str, task_id: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(
            sql.SQL("SELECT status, traceback FROM {}.results WHERE task_id = %s").format(
                sql.Identifier(schema)
            ),
            (task_id,),
        )
        row = cur.fetchone()
        return {"status": row[0], "traceback": row[1]} if row else None


@pytest.fixture
def tasks(proj_app: Any) -> Any:
    """The ``faults_tasks`` module, registered on the test's handle of the e2e app."""
    sys.path.insert(0, str(HERE))
    import faults_tasks  # type: ignore[import-not-found]

    return faults_tasks


@pytest.fixture
def fworker(start_worker: Any) -> Iterator[Callable[..., Any]]:
    """Start a worker that also loads ``faults_tasks``."""

    def start(*args: str, ready: bool = True) -> Any:
        return start_worker("-I", "faults_tasks", *args, ready=ready)

    yield start
