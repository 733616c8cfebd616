"""Failures travel as Celery's exception dict and come back as the original type."""

from __future__ import annotations

import pytest

from celeriac import serialization
from celeriac.exceptions import (
    MaxRetriesExceededError,
    RemoteTaskError,
    SoftTimeLimitExceeded,
    TaskError,
    TimeLimitExceeded,
)
from celeriac.serialization import JSON


class NeedsTwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}/{b}")


def through_json(exc: BaseException) -> BaseException:
    data = serialization.dumps(serialization.exception_to_dict(exc))
    value = serialization.loads(data, JSON, frozenset({JSON}))
    assert serialization.is_exception_dict(value)
    return serialization.exception_from_dict(value)


def test_celery_wire_form() -> None:
    assert serialization.exception_to_dict(KeyError("k")) == {
        "exc_type": "KeyError",
        "exc_message": ["k"],
        "exc_module": "builtins",
    }


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad", 3), KeyError("k"), TimeLimitExceeded(5.0), SoftTimeLimitExceeded()],
    ids=repr,
)
def test_importable_types_come_back(exc: BaseException) -> None:
    back = through_json(exc)
    assert type(back) is type(exc)
    assert back.args == exc.args


def test_celery_exceptions_map_to_celeriac_ones() -> None:
    back = serialization.exception_from_dict(
        {"exc_type": "TimeLimitExceeded", "exc_message": [1], "exc_module": "celery.exceptions"}
    )
    assert isinstance(back, TimeLimitExceeded)


def test_type_whose_init_differs_is_still_recreated() -> None:
    back = through_json(NeedsTwoArgs(1, 2))
    assert type(back) is NeedsTwoArgs
    assert back.args == ("1/2",)


def test_non_importable_type_becomes_remote_task_error_with_its_name() -> None:
    data = {"exc_type": "PaymentDeclined", "exc_message": ["card"], "exc_module": "shop.errors"}
    back = serialization.exception_from_dict(data)
    assert isinstance(back, RemoteTaskError) and isinstance(back, TaskError)
    assert type(back).__name__ == "PaymentDeclined"
    assert type(back).__module__ == "shop.errors"
    assert back.args == ("card",)
    # the same remote type gives the same class, and it serializes back to its remote name
    assert type(serialization.exception_from_dict(data)) is type(back)
    assert serialization.exception_to_dict(back) == data


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "getcwd"), ("builtins", "print"), ("builtins", "NoSuchError"), ("", "X.Y")],
)
def test_names_that_are_not_exception_types_fall_back(module: str, name: str) -> None:
    back = serialization.exception_from_dict(
        {"exc_type": name, "exc_message": "single", "exc_module": module}
    )
    assert isinstance(back, RemoteTaskError)
    assert back.args == ("single",)


def test_unserializable_exception_arguments_become_reprs() -> None:
    marker = object()
    back = through_json(ValueError(marker))
    assert back.args == (repr(marker),)


def test_max_retries_exceeded_round_trips() -> None:
    back = through_json(MaxRetriesExceededError("Can't retry"))
    assert isinstance(back, MaxRetriesExceededError)
