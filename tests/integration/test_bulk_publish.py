"""Task.delay_many: the bulk path, one INSERT for many tasks, all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from celeriac.exceptions import EncodeError


def _queued(app: Any) -> list[tuple[str, bytes]]:
    with app.database.connection() as conn:
        return conn.execute(
            f'SELECT task_id, body FROM "{app.database.schema}".jobs ORDER BY id'
        ).fetchall()


def test_delay_many_queues_every_call_in_one_statement(app: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = add.delay_many([(1, 2), (3, 4), (5, 6)], priority=3)
    rows = _queued(app)
    assert [r.id for r in results] == [task_id for task_id, _ in rows]
    assert [json.loads(bytes(body))[0] for _, body in rows] == [[1, 2], [3, 4], [5, 6]]
    with app.database.connection() as conn:
        priorities = conn.execute(
            f'SELECT DISTINCT priority FROM "{app.database.schema}".jobs'
        ).fetchall()
    assert priorities == [(3,)]


def test_delay_many_writes_nothing_when_one_call_is_bad(app: Any) -> None:
    @app.task
    def echo(value: Any) -> Any:
        return value

    app.ensure_schema()
    with pytest.raises(EncodeError):
        echo.delay_many([(1,), (object(),)])
    assert _queued(app) == []


def test_delay_many_checks_arguments(app: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    app.ensure_schema()
    with pytest.raises(TypeError, match="add"):
        add.delay_many([(1, 2), (1,)])
    assert _queued(app) == []


def test_delay_many_runs_eagerly_when_always_eager(app: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    app.conf.task_always_eager = True
    assert [r.get() for r in add.delay_many([(1, 2), (3, 4)])] == [3, 7]
