"""Task.replace and retry(throw=False) without a worker: eager mode and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, chain, group
from celeriac.exceptions import ImproperlyConfigured, Retry


@pytest.fixture
def app() -> Celery:
    return Celery("replacing", task_always_eager=True)


def tasks(app: Celery) -> Any:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def into_chain(self: Any, x: int) -> Any:
        return self.replace(chain(add.s(x, 1), add.s(10)))

    @app.task(bind=True)
    def into_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(bind=True)
    def into(self: Any, sig: Any) -> Any:
        return self.replace(sig)

    @app.task(bind=True)
    def quiet_retry(self: Any) -> Any:
        returned = self.retry(countdown=1, throw=False)
        return type(returned).__name__

    return add, into_chain, into_group, into, quiet_retry


def test_eager_replace_returns_the_replacement_result(app: Celery) -> None:
    add, into_chain, into_group, _, _ = tasks(app)
    assert into_chain.delay(1).get() == 12
    assert into_group.delay(1).get() == [2, 3]
    assert (add.s(1, 1) | into_chain.s()).apply_async().get() == 13


def test_replace_refuses_chord_members_and_empty_chains(app: Celery) -> None:
    add, _, _, into, _ = tasks(app)
    bad = into.apply((add.s(1, 1).set(chord={"task": "x"}),))
    assert isinstance(bad.result, ImproperlyConfigured)
    empty = into.apply((chain(),))
    assert isinstance(empty.result, ImproperlyConfigured)


def test_eager_retry_without_throw_returns_the_retry_and_goes_on(app: Celery) -> None:
    *_, quiet_retry = tasks(app)
    assert quiet_retry.delay().get() == Retry.__name__
