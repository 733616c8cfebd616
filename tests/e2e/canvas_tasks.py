"""Tasks for the canvas tests; workers load them with ``-I canvas_tasks``."""

from __future__ import annotations

import os
import time
from typing import Any

from proj import app  # type: ignore[import-not-found]


def _append(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task
def mul(x: int, y: int) -> int:
    return x * y


@app.task
def identity(x: Any) -> Any:
    return x


@app.task
def collect(values: list[Any], path: str) -> list[Any]:
    """A chord body that records each run (one line per run, with the pid)."""
    _append(path, f"{os.getpid()} {values!r}")
    return values


@app.task
def on_error(request: Any, exc: BaseException, traceback: str | None, path: str) -> None:
    """A new-style errback (called in the worker with the failed request)."""
    _append(path, f"new {request.id} {type(exc).__name__} {exc}")


@app.task
def on_error_old(task_id: str, path: str) -> None:
    """An old-style errback (published as a task with the failed task's id)."""
    _append(path, f"old {task_id}")


@app.task
def record(value: Any, path: str) -> Any:
    """A callback that records what it got."""
    _append(path, repr(value))
    return value


@app.task
def record_once_queued(value: Any, task_id: str, path: str) -> Any:
    """Record ``value`` once task ``task_id`` is in the queue (or done): a chord body
    published by an earlier part's outcome is then certainly there to be claimed next."""
    from psycopg import sql

    schema = sql.Identifier(app.database.schema)
    probe = sql.SQL(
        "SELECT 1 FROM {}.jobs WHERE task_id = %(id)s UNION ALL "
        "SELECT 1 FROM {}.results WHERE task_id = %(id)s"
    ).format(schema, schema)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with app.database.connection() as conn:
            if conn.execute(probe, {"id": task_id}).fetchone():
                break
        time.sleep(0.01)
    _append(path, repr(value))
    return value
