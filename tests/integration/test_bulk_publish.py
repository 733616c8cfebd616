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


def _headers(app: Any) -> list[dict[str, Any]]:
    with app.database.connection() as conn:
        rows = conn.execute(f'SELECT headers FROM "{app.database.schema}".jobs ORDER BY id')
        return [row[0] for row in rows]


def test_delay_many_writes_the_headers_delay_writes(app: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    one = add.delay(1, 'two "quoted"')
    many = add.delay_many([(1, 'two "quoted"'), (3, 4)])
    single, first, second = _headers(app)
    assert first["id"] == first["root_id"] == many[0].id
    assert second["argsrepr"] == "[3, 4]"
    assert single["id"] == one.id
    for key in ("id", "root_id"):
        single.pop(key), first.pop(key)
    assert first == single


def test_delay_many_takes_countdown_and_expires(app: Any) -> None:
    @app.task
    def noop() -> None:
        pass

    noop.delay_many([(), ()], countdown=60, expires=3600)
    with app.database.connection() as conn:
        rows = conn.execute(
            f"SELECT eta > now() + interval '50 seconds', expires IS NOT NULL "
            f'FROM "{app.database.schema}".jobs'
        ).fetchall()
    assert rows == [(True, True), (True, True)]


def test_delay_many_routes_each_call_when_a_router_reads_arguments(app: Any) -> None:
    @app.task
    def echo(value: int) -> int:
        return value

    app.conf.task_routes = [lambda name, args, kwargs, options, task=None: f"q{args[0]}"]
    echo.delay_many([(1,), (2,)])
    with app.database.connection() as conn:
        rows = conn.execute(f'SELECT queue FROM "{app.database.schema}".jobs ORDER BY id')
        assert [row[0] for row in rows] == ["q1", "q2"]
