"""Signatures: Celery's merge rules, linking, freezing, and plain-data round trips."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from celeriac import Celery, Signature, serialization, signature


@pytest.fixture
def add(request: pytest.FixtureRequest) -> Any:
    app = Celery("sig_unit", broker="postgresql://unused/", set_as_current=False)

    @app.task
    def add(x: int, y: int = 0, z: int = 0) -> int:
        return x + y + z

    return add


def test_s_si_and_signature_by_name(add: Any) -> None:
    assert add.s(1, y=2) == {
        "task": add.name,
        "args": [1],
        "kwargs": {"y": 2},
        "options": {},
        "subtask_type": None,
        "immutable": False,
    }
    assert add.si(1).immutable
    by_name = signature(add.name, args=(1,), kwargs={"y": 2}, countdown=5)
    assert by_name.args == [1] and by_name.options == {"countdown": 5}
    assert add.signature((1,), {"y": 2}, {"queue": "q"}).options == {"queue": "q"}


def test_clone_prepends_args_and_call_time_wins(add: Any) -> None:
    sig = add.s(2, y=1).set(queue="a", priority=1)
    merged = sig.clone((10,), {"y": 5, "z": 1}, queue="b")
    assert merged.args == [10, 2]
    assert merged.kwargs == {"y": 5, "z": 1}
    assert merged.options == {"queue": "b", "priority": 1}
    assert sig.args == [2] and sig.options["queue"] == "a"  # the original is unchanged


def test_immutable_ignores_extra_args_but_merges_options(add: Any) -> None:
    sig = add.si(1, 2)
    merged = sig.clone((99,), {"z": 7}, queue="b")
    assert merged.args == [1, 2] and merged.kwargs == {} and merged.options == {"queue": "b"}
    args, kwargs, options = sig._merge((99,), {"z": 7}, {"countdown": 1})
    assert (args, kwargs, options) == ([1, 2], {}, {"countdown": 1})


def test_set_is_in_place_and_returns_self(add: Any) -> None:
    sig = add.s(1)
    assert sig.set(countdown=3, immutable=True) is sig
    assert sig.options == {"countdown": 3} and sig.immutable


def test_link_returns_the_callback_and_on_error_the_signature(add: Any) -> None:
    sig = add.s(1)
    callback, errback = add.s(2), add.s(3)
    assert sig.link(callback) is callback
    assert sig.link_error(errback) is errback
    assert sig.on_error(add.s(4)) is sig
    assert sig.options["link"] == [callback]
    assert [e.args for e in sig.options["link_error"]] == [[3], [4]]


def test_freeze_assigns_an_id_once(add: Any) -> None:
    sig = add.s(1)
    result = sig.freeze()
    assert sig.id == result.id == sig.freeze().id
    assert sig.freeze("mine").id == "mine"


def test_calling_runs_in_process(add: Any) -> None:
    assert add.s(1, 2)(3) == 6  # extra args prepended: add(3, 1, 2)
    assert add.si(1, 2)(3) == 3


def test_json_and_pickle_round_trips(add: Any) -> None:
    sig = add.s(1, y=2).set(countdown=3)
    sig.link(add.s(5))
    data = serialization.dumps(sig)
    back = signature(serialization.loads(data, serialization.JSON, {serialization.JSON}))
    assert isinstance(back, Signature) and back == sig
    assert pickle.loads(pickle.dumps(sig)) == sig
