"""Retry countdown/backoff/jitter math and eager execution (apply, task_always_eager)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celeriac import Celery, states
from celeriac.exceptions import EncodeError, MaxRetriesExceededError, Retry


@pytest.fixture
def app() -> Celery:
    return Celery("retrying", task_always_eager=True)


def make(app: Celery, **options: Any) -> Any:
    @app.task(**options)
    def task() -> None:
        return None

    return task


@pytest.mark.parametrize(
    ("backoff", "retries", "expected"),
    [(True, 0, 1), (True, 3, 8), (2, 3, 16), (3, 0, 3), (0.5, 2, 4), (True, 20, 600)],
)
def test_backoff_without_jitter(app: Celery, backoff: Any, retries: int, expected: float) -> None:
    task = make(app, retry_backoff=backoff, retry_jitter=False)
    assert task.backoff_countdown(retries) == expected


def test_backoff_max_caps(app: Celery) -> None:
    task = make(app, retry_backoff=True, retry_backoff_max=5, retry_jitter=False)
    assert task.backoff_countdown(10) == 5


@given(st.integers(min_value=0, max_value=30), st.integers(min_value=1, max_value=10))
def test_full_jitter_stays_within_zero_and_the_cap(retries: int, factor: int) -> None:
    task = make(Celery("jitter"), retry_backoff=factor, retry_backoff_max=600)
    cap = min(600, factor * 2**retries)
    assert 0 <= task.backoff_countdown(retries) <= cap


def test_full_jitter_is_celerys_randrange(app: Celery) -> None:
    task = make(app, retry_backoff=True)
    random.seed(7)
    got = [task.backoff_countdown(4) for _ in range(20)]
    random.seed(7)
    assert got == [float(random.randrange(17)) for _ in range(20)]
    assert len(set(got)) > 1


def test_eager_retry_runs_again_until_success(app: Celery) -> None:
    seen: list[int] = []

    @app.task(bind=True, max_retries=3)
    def flaky(self: Any, x: int) -> str:
        seen.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ValueError("again"), countdown=60)
        return f"ok {x}"

    result = flaky.delay(1)
    assert result.get() == "ok 1"
    assert result.state == states.SUCCESS
    assert seen == [0, 1, 2]


def test_eager_retry_with_new_arguments(app: Celery) -> None:
    @app.task(bind=True)
    def countdown_to_zero(self: Any, n: int) -> int:
        if n > 0:
            raise self.retry(args=(n - 1,), countdown=0)
        return self.request.retries

    assert countdown_to_zero.apply((3,)).get() == 3


def test_eager_retry_past_the_limit_fails_with_the_exception(app: Celery) -> None:
    @app.task(bind=True, max_retries=2)
    def always(self: Any) -> None:
        raise self.retry(exc=KeyError("gone"))

    result = always.apply()
    assert result.state == states.FAILURE
    assert isinstance(result.result, KeyError)
    with pytest.raises(KeyError):
        result.get()


def test_retry_without_exc_past_the_limit_raises_max_retries_exceeded(app: Celery) -> None:
    @app.task(bind=True, max_retries=1)
    def always(self: Any) -> None:
        try:
            raise OSError("flaky network")
        except OSError:
            raise self.retry() from None

    result = always.apply()
    assert isinstance(result.result, MaxRetriesExceededError)


def test_autoretry_for_in_eager_mode(app: Celery) -> None:
    calls: list[int] = []

    @app.task(bind=True, autoretry_for=(ConnectionError,), retry_kwargs={"max_retries": 4})
    def fetch(self: Any) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return self.request.retries

    assert fetch.delay().get() == 2


def test_retry_called_directly_reraises(app: Celery) -> None:
    @app.task(bind=True)
    def direct(self: Any) -> None:
        raise self.retry(exc=ValueError("direct"))

    with pytest.raises(ValueError, match="direct"):
        direct()

    @app.task(bind=True)
    def bare(self: Any) -> None:
        raise self.retry()

    with pytest.raises(Retry):
        bare()


def test_eager_failure_is_returned_or_propagated(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("boom")

    result = boom.delay()
    assert result.failed() and isinstance(result.result, ValueError)
    assert "ValueError: boom" in (result.traceback or "")
    assert result.get(propagate=False).args == ("boom",)
    with pytest.raises(ValueError):
        boom.apply(throw=True)
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError):
        boom.delay()


def test_eager_request_fields(app: Celery) -> None:
    @app.task(bind=True)
    def show(self: Any) -> dict[str, Any]:
        r = self.request
        return {
            "id": r.id,
            "eager": r.is_eager,
            "direct": r.called_directly,
            "header": r.headers.get("tenant"),
            "attr": r.get("tenant"),
        }

    got = show.apply_async(task_id="fixed", headers={"tenant": "acme"}).get()
    assert got == {"id": "fixed", "eager": True, "direct": False, "header": "acme", "attr": "acme"}


def test_eager_mode_still_serializes_arguments(app: Celery) -> None:
    @app.task
    def takes(x: Any) -> Any:
        return x

    with pytest.raises(EncodeError):
        takes.delay(object())
    assert takes.delay((1, 2)).get() == [1, 2]  # as JSON would deliver it


def test_eager_group_result_needs_no_database() -> None:
    from celeriac import group

    # an unreachable broker: any database access would raise
    app = Celery("eager-group", broker="postgresql://u@127.0.0.1:1/x", task_always_eager=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = group(add.s(1, 2), add.s(3, 4)).apply_async()
    assert result.get() == [3, 7]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 2


def test_an_eager_task_that_clears_its_callbacks_sends_no_link(app: Celery) -> None:
    seen: list[Any] = []

    @app.task
    def record(*args: Any) -> None:
        seen.append(args)

    @app.task(bind=True)
    def step(self: Any, x: int, stop: bool) -> int:
        if stop:
            self.request.callbacks = None
        return x

    step.apply_async((1, True), link=record.s())
    step.apply_async((2, False), link=record.s())
    assert seen == [(2,)]
