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


def _waiting(app: Any, result: Any) -> tuple[list[Any], Any]:
    """get() in a thread, returned once the listener has its waiter."""
    import threading

    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(result.get(timeout=10)), daemon=True)
    thread.start()
    listener = _listener(app)
    _until(lambda: listener.healthy and result.id in listener._waiters)
    return got, thread


def _finish(app: Any, *finishes: tuple[Any, int, bytes]) -> set[int]:
    from celeriac.broker import Batch, Finish

    batch = Batch(
        finished=[
            Finish(job.id, attempt, job.task_id, states.SUCCESS, "application/json", value)
            for job, attempt, value in finishes
        ]
    )
    with app.database.connection() as conn:
        accepted: set[int] = app.broker.commit(conn, batch, "w@test", 60.0)
    return accepted


def test_a_result_announced_whole_needs_no_read_and_the_row_still_reads(
    waiting_app: Any, monkeypatch: Any
) -> None:
    result = waiting_app.tasks["t.noop"].delay()
    with waiting_app.database.connection() as conn:
        (job,) = waiting_app.broker.claim(conn, "celery", 1, worker_id=1)
    got, thread = _waiting(waiting_app, result)
    reads: list[str] = []
    real_get = waiting_app.backend.get
    monkeypatch.setattr(waiting_app.backend, "get", lambda i: reads.append(i) or real_get(i))
    assert _finish(waiting_app, (job, job.attempt, b'{"answer": 42}')) == {job.id}
    thread.join(10)
    assert got == [{"answer": 42}]
    assert reads == []  # the value came with the notification
    assert result.worker == "w@test" and result.date_done is not None  # the row, read now
    assert reads == [result.id]  # once: a final row is kept


def test_a_lone_refused_outcome_announces_nothing(waiting_app: Any) -> None:
    """The same for an outcome written alone (the single-outcome statement): a stale
    attempt is refused and announces neither its id nor its value."""
    result = waiting_app.tasks["t.noop"].delay()
    with waiting_app.database.connection() as conn:
        (job,) = waiting_app.broker.claim(conn, "celery", 1, worker_id=1)
    got, thread = _waiting(waiting_app, result)
    assert _finish(waiting_app, (job, job.attempt + 1, b'"late"')) == set()
    assert _finish(waiting_app, (job, job.attempt, b'"ok"')) == {job.id}
    thread.join(10)
    assert got == ["ok"]


def test_a_refused_outcome_announces_no_value(waiting_app: Any) -> None:
    """Only an accepted outcome's value is announced: a stale attempt's, refused in a
    batch that commits, never reaches a waiting get() (which would return what the
    database refused)."""
    noop = waiting_app.tasks["t.noop"]
    result, other = noop.delay(), noop.delay()
    with waiting_app.database.connection() as conn:
        job, job2 = waiting_app.broker.claim(conn, "celery", 2, worker_id=1)
    if job.task_id != result.id:
        job, job2 = job2, job
    got, thread = _waiting(waiting_app, result)
    stale, good = (job, job.attempt + 1, b'"late"'), (job2, job2.attempt, b'"other"')
    assert _finish(waiting_app, stale, good) == {job2.id}
    assert _finish(waiting_app, (job, job.attempt, b'"ok"')) == {job.id}
    thread.join(10)
    assert got == ["ok"]
    assert other.get(timeout=5) == "other"
