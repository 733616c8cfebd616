"""AsyncResult against real rows: get/timeout/propagate, fields, forget, revoke, NOTIFY."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import psycopg
import pytest

from celeriac import backend as backend_module
from celeriac import states
from celeriac.exceptions import RemoteTaskError, TaskRevokedError, TimeoutError
from celeriac.result import AsyncResult
from tests.integration.inline_worker import job_rows, run_jobs


def test_get_timeout_raises_celeriacs_timeout_error(app: Any) -> None:
    @app.task
    def never_run() -> None:
        return None

    result = never_run.delay()
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        result.get(timeout=0.3)
    assert time.monotonic() - began < 5


def test_failure_propagates_or_is_returned_with_traceback(app: Any) -> None:
    @app.task
    def boom(word: str) -> None:
        raise ValueError(word)

    result = boom.delay("kaput")
    run_jobs(app)
    with pytest.raises(ValueError, match="kaput"):
        result.get(timeout=5)
    value = result.get(timeout=5, propagate=False)
    assert isinstance(value, ValueError) and value.args == ("kaput",)
    assert result.failed() and not result.successful() and result.ready()
    assert result.state == result.status == states.FAILURE
    assert result.traceback is not None and "ValueError: kaput" in result.traceback
    assert "boom" in result.traceback
    with pytest.raises(ValueError) as info:
        result.get(timeout=5)
    (note,) = info.value.__notes__
    assert note.startswith(f"Remote traceback of task {result.id}") and "kaput" in note


def test_result_fields_after_success(app: Any) -> None:
    @app.task(bind=True, max_retries=3, default_retry_delay=0)
    def add(self: Any, x: int, y: int) -> int:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return x + y

    before = dt.datetime.now(dt.UTC)
    result = add.apply_async((2,), {"y": 3}, queue="math")
    run_jobs(app, "math")  # retried
    run_jobs(app, "math")
    assert result.get(timeout=5) == 5
    assert result.result == result.info == 5
    assert result.date_done is not None and result.date_done >= before
    assert result.name == add.name
    assert (result.args, result.kwargs) == ([2], {"y": 3})
    assert result.worker == "inline@test"
    assert (result.retries, result.queue) == (1, "math")


def test_unknown_exception_type_arrives_as_remote_task_error(app: Any) -> None:
    result = AsyncResult("remote-failure", app=app)
    app.backend.store_state(
        "remote-failure",
        states.FAILURE,
        None,
        traceback="Traceback ...\nshop.errors.PaymentDeclined: card",
    )
    with app.database.connection() as conn:
        conn.execute(
            f'UPDATE "{app.database.schema}".results SET result = %s WHERE task_id = %s',
            (
                b'{"exc_type":"PaymentDeclined","exc_message":["card"],"exc_module":"shop.errors"}',
                "remote-failure",
            ),
        )
    with pytest.raises(RemoteTaskError, match="card") as info:
        result.get(timeout=5)
    assert type(info.value).__name__ == "PaymentDeclined"
    assert "PaymentDeclined: card" in (result.traceback or "")


def test_forget_deletes_the_result(app: Any) -> None:
    @app.task
    def value() -> int:
        return 1

    result = value.delay()
    run_jobs(app)
    assert result.get(timeout=5) == 1
    result.forget()
    assert result.state == states.PENDING and result.result is None


def test_revoke_of_a_queued_task_is_revoked_at_once(app: Any) -> None:
    @app.task
    def later() -> None:
        return None

    result = later.apply_async(countdown=3600)
    result.revoke()
    assert result.state == states.REVOKED  # no worker involved
    assert job_rows(app) == []
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert isinstance(result.get(propagate=False), TaskRevokedError)


def test_revoke_of_a_task_waiting_to_retry_clears_the_retry_traceback(app: Any) -> None:
    @app.task(bind=True)
    def flaky(self: Any) -> None:
        raise self.retry(exc=ValueError("again"), countdown=3600)

    result = flaky.delay()
    run_jobs(app)
    assert result.state == states.RETRY and "ValueError" in (result.traceback or "")
    result.revoke()
    assert result.state == states.REVOKED
    assert result.traceback is None  # Celery stores REVOKED without a traceback


def test_get_is_woken_by_notify_not_polling(app: Any, dsn: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(backend_module, "FALLBACK_POLL", 60.0)
    result = AsyncResult("notified", app=app)
    app.ensure_schema()

    def store_from_another_connection() -> None:
        time.sleep(0.5)  # let get() start waiting; this is the thing being measured
        with psycopg.connect(dsn, autocommit=True) as conn:
            app.backend.store_state("notified", states.SUCCESS, "hello", conn=conn)

    thread = threading.Thread(target=store_from_another_connection)
    began = time.monotonic()
    thread.start()
    assert result.get(timeout=30, interval=60) == "hello"
    elapsed = time.monotonic() - began
    thread.join()
    assert elapsed < 10, f"get() took {elapsed:.1f}s: it polled instead of being notified"


def test_update_state_custom_states(app: Any) -> None:
    @app.task(bind=True)
    def progress(self: Any) -> list[Any]:
        self.update_state(state="PROGRESS", meta={"done": 40})
        mine = AsyncResult(self.request.id, app=self.app)
        return [mine.state, mine.info]

    result = progress.delay()
    run_jobs(app)
    assert result.get(timeout=5) == ["PROGRESS", {"done": 40}]
    # a final state is never replaced by a late progress report
    progress.update_state(task_id=result.id, state="PROGRESS", meta={"done": 99})
    assert AsyncResult(result.id, app=app).state == states.SUCCESS
    outside = AsyncResult("from-outside", app=app)
    progress.update_state(task_id="from-outside", state="PROGRESS", meta={"done": 1})
    assert (outside.state, outside.info, outside.ready()) == ("PROGRESS", {"done": 1}, False)


def test_get_inside_a_task(app: Any) -> None:
    @app.task
    def value() -> int:
        return 7

    @app.task
    def waits_for(task_id: str) -> Any:
        return AsyncResult(task_id).get(timeout=1, propagate=False)

    done = value.delay()
    run_jobs(app)
    pending = value.apply_async(countdown=3600)
    ok = waits_for.delay(done.id)
    blocked = waits_for.delay(pending.id)
    run_jobs(app)
    assert ok.get(timeout=5) == 7  # already stored: simply returned
    with pytest.raises(RuntimeError, match=r"Never call result\.get"):
        blocked.get(timeout=5)


def test_allow_join_result_permits_waiting_inside_a_task(app: Any) -> None:
    from celeriac.result import allow_join_result

    @app.task
    def waits(task_id: str) -> str:
        with allow_join_result():
            try:
                AsyncResult(task_id).get(timeout=0.2)
            except TimeoutError:
                return "waited"
        return "unexpected"

    pending = AsyncResult("never-stored", app=app)
    result = waits.delay(pending.id)
    run_jobs(app)
    assert result.get(timeout=5) == "waited"


def test_errback_pattern_from_celerys_docs(app: Any) -> None:
    @app.task
    def fails() -> None:
        raise KeyError("lost")

    @app.task
    def on_error(uuid: str) -> str:  # tasks.html "link_error" example (old style)
        result = AsyncResult(uuid)
        return f"{result.get(propagate=False)!r} {'KeyError' in (result.traceback or '')}"

    result = fails.apply_async(link_error=on_error.s())
    run_jobs(app)  # runs fails, publishes the errback
    run_jobs(app)  # runs the errback
    with app.database.connection() as conn:
        rows = conn.execute(
            f'SELECT task_id FROM "{app.database.schema}".results WHERE name = %s',
            (on_error.name,),
        ).fetchall()
    assert len(rows) == 1
    assert AsyncResult(rows[0][0], app=app).get(timeout=5) == "KeyError('lost') True"
    assert result.failed()


def test_close_releases_the_listener_connection(app: Any, dsn: str) -> None:
    result = AsyncResult("listened", app=app)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.1)  # starts this process's listener for the schema
    channel = app.backend.channel

    def listeners() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
                (f'LISTEN "{channel}";%',),
            ).fetchone()
        return int(row[0]) if row else 0

    assert listeners() == 1
    app.close()
    assert listeners() == 0


def test_task_store_eager_result(app: Any) -> None:
    app.conf.task_always_eager = True
    app.conf.task_store_eager_result = True

    @app.task
    def double(x: int) -> int:
        return 2 * x

    @app.task
    def fails() -> None:
        raise ValueError("eager failure")

    ok, bad = double.delay(21), fails.delay()
    stored_ok, stored_bad = AsyncResult(ok.id, app=app), AsyncResult(bad.id, app=app)
    assert (stored_ok.state, stored_ok.result) == (states.SUCCESS, 42)
    assert stored_bad.state == states.FAILURE
    assert "eager failure" in (stored_bad.traceback or "")
    app.conf.task_store_eager_result = False
    assert AsyncResult(double.delay(1).id, app=app).state == states.PENDING
