"""get() of a task this process published: the first read is skipped only when the
listener was already listening at publish time and has heard nothing of the task."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from celeriac import backend as backend_module
from celeriac import states
from celeriac.backend import ResultListener


@pytest.fixture
def waiting_app(app: Any, monkeypatch: Any) -> Any:
    monkeypatch.setattr(backend_module, "FALLBACK_POLL", 60.0)  # a missed read would hang
    app.task(name="t.noop")(lambda: None)
    app.ensure_schema()
    return app


def _listener(app: Any) -> ResultListener:
    return ResultListener.for_database(app.backend.db, app.backend.channel)


def _store(app: Any, dsn: str, task_id: str) -> None:
    """Store a result from another connection (as a worker does): NOTIFY included."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        app.backend.store_state(task_id, states.SUCCESS, task_id, conn=conn)


def _until(check: Any) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_result_stored_before_the_listener_listened_is_read(waiting_app: Any, dsn: str) -> None:
    result = waiting_app.tasks["t.noop"].delay()  # no listener yet: nobody hears the NOTIFY
    _store(waiting_app, dsn, result.id)
    assert result.get(timeout=5) == result.id


def test_a_result_heard_before_get_is_read(waiting_app: Any, dsn: str) -> None:
    noop = waiting_app.tasks["t.noop"]
    listener = _listener(waiting_app)
    listener.subscribe([])
    _until(lambda: listener.healthy)
    result = noop.delay()
    assert listener.unheard([result.id], result._sent_at)
    _store(waiting_app, dsn, result.id)
    _until(lambda: not listener.unheard([result.id], result._sent_at))
    assert result.get(timeout=5) == result.id


def test_a_result_stored_while_get_waits_wakes_it(waiting_app: Any, dsn: str) -> None:
    import threading

    listener = _listener(waiting_app)
    listener.subscribe([])
    _until(lambda: listener.healthy)
    result = waiting_app.tasks["t.noop"].delay()
    assert listener.unheard([result.id], result._sent_at)  # get() will not read first
    timer = threading.Timer(0.2, _store, (waiting_app, dsn, result.id))
    timer.start()
    began = time.monotonic()
    assert result.get(timeout=30) == result.id
    assert time.monotonic() - began < 10
    timer.join()


def test_forgetting_heard_ids_falls_back_to_reading(waiting_app: Any, monkeypatch: Any) -> None:
    listener = _listener(waiting_app)
    listener.subscribe([])
    _until(lambda: listener.healthy)
    monkeypatch.setattr(ResultListener, "HEARD", 2)
    since = time.monotonic()
    assert listener.unheard(["x"], since)
    listener._wake(["a", "b", "c"])  # "a" is forgotten: it might have been ours
    assert not listener.unheard(["x"], since)
    assert listener.unheard(["x"], time.monotonic())
