"""``link`` and ``link_error`` with Celery's argument rules, recorded atomically with the
parent's outcome (jobs run through the worker's own steps, against real rows)."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import chain, states
from celeriac.broker import Batch, Finish
from celeriac.exceptions import Ignore, Reject
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

from .inline_worker import HOSTNAME, claim, job_rows, run_jobs

seen: list[Any] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()


def _common(app: Any) -> tuple[Any, Any, Any]:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def record(*args: Any) -> None:
        seen.append(args)

    @app.task
    def fail(message: str) -> None:
        raise ValueError(message)

    return add, record, fail


def test_link_prepends_result_and_sets_parent_and_root(app: Any) -> None:
    add, record, _ = _common(app)
    parent = add.apply_async((2, 2), link=[record.s("x"), record.si("fixed")])
    run_jobs(app)
    callbacks = [row for row in job_rows(app) if row["task_name"] == record.name]
    assert [row["headers"]["parent_id"] for row in callbacks] == [parent.id, parent.id]
    assert [row["headers"]["root_id"] for row in callbacks] == [parent.id, parent.id]
    run_jobs(app)
    assert sorted(seen, key=repr) == [("fixed",), (4, "x")]


def test_link_fires_when_the_parent_ignores_its_result(app: Any) -> None:
    _, record, _ = _common(app)

    @app.task(ignore_result=True)
    def quiet() -> str:
        return "q"

    quiet.apply_async(link=record.s())
    run_jobs(app)
    run_jobs(app)
    assert seen == [("q",)]


def test_link_never_fires_after_failure_or_retry(app: Any) -> None:
    _, record, fail = _common(app)

    @app.task(bind=True, default_retry_delay=60)
    def again(self: Any) -> None:
        raise self.retry()

    fail.apply_async(("no",), link=record.s())
    again.apply_async(link=record.s())
    run_jobs(app)
    assert [row["task_name"] for row in job_rows(app)] == [again.name]  # waiting to retry
    assert seen == []


def test_errback_styles(app: Any) -> None:
    fail = _common(app)[2]

    @app.task
    def new_style(request: Any, exc: BaseException, traceback: str, tag: str) -> None:
        seen.append(("new", request.id, type(exc).__name__, type(traceback).__name__, tag))

    @app.task(bind=True)
    def bound(self: Any, *args: Any) -> None:
        seen.append(("bound", *args))

    @app.task
    def old_style(task_id: str, tag: str) -> None:
        seen.append(("old", task_id, tag))

    errbacks = [new_style.s("t"), old_style.s("o"), bound.s()]
    result = fail.apply_async(("boom",), link_error=errbacks)
    run_jobs(app)
    assert seen == [("new", result.id, "ValueError", "str", "t")]  # called in the worker
    run_jobs(app)  # old-style ones (one argument left, or bind=True) were published
    assert sorted(seen[1:]) == [("bound", result.id), ("old", result.id, "o")]


def test_errback_that_raises_is_logged_and_changes_nothing(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, fail = _common(app)

    @app.task
    def broken(request: Any, exc: BaseException, traceback: str) -> None:
        raise RuntimeError("errback bug")

    result = fail.apply_async(("boom",), link_error=broken.s())
    run_jobs(app)
    assert result.state == states.FAILURE and str(result.result) == "boom"
    assert "errback bug" in caplog.text


def test_no_errback_on_retry_ignore_or_reject(app: Any) -> None:
    _, record, _ = _common(app)

    @app.task(bind=True, default_retry_delay=60)
    def retried(self: Any) -> None:
        raise self.retry()

    @app.task
    def ignored() -> None:
        raise Ignore()

    @app.task
    def rejected() -> None:
        raise Reject("no", requeue=False)

    for task in (retried, ignored, rejected):
        task.apply_async(link_error=record.s())
    run_jobs(app)
    run_jobs(app)
    assert seen == []


def test_callbacks_are_published_only_with_an_accepted_outcome(app: Any) -> None:
    add, record, _ = _common(app)
    add.apply_async((1, 1), link=record.s())
    (job,) = claim(app)
    outcome = Execution(app, job, HOSTNAME).run()
    batch = to_batch([outcome])
    stale = Batch(
        finished=[
            Finish(job.id, job.attempt + 1, job.task_id, states.SUCCESS, "application/json", b"2")
        ],
        publish=batch.publish,
    )
    with app.database.connection() as conn:
        assert app.broker.commit(conn, stale, HOSTNAME, 60.0) == set()
    assert [row["task_name"] for row in job_rows(app)] == [add.name]  # no callback
    with app.database.connection() as conn:
        assert app.broker.commit(conn, batch, HOSTNAME, 60.0) == {job.id}
    assert [row["task_name"] for row in job_rows(app)] == [record.name]  # exactly one


def test_a_task_that_clears_its_chain_or_callbacks_sends_nothing_on(app: Any) -> None:
    """Celery's way to stop a workflow from inside a task (celery/celery#3550):
    ``self.request.chain = None``, ``self.request.callbacks = None``."""
    _, record, _ = _common(app)

    @app.task(bind=True)
    def step(self: Any, x: int, stop: bool) -> int:
        if stop:
            self.request.chain = self.request.callbacks = None
        return x

    step.apply_async((1, True), link=record.s("linked"))
    chain(step.s(2, True), record.s("next")).apply_async()
    step.apply_async((3, False), link=record.s("linked"))
    chain(step.s(4, False), record.s("next")).apply_async()
    run_jobs(app)
    sent = [row["body"] for row in job_rows(app) if row["task_name"] == record.name]
    assert len(sent) == 2  # only the two steps that went on
    run_jobs(app)
    assert sorted(seen, key=repr) == [(3, "linked"), (4, "next")]
