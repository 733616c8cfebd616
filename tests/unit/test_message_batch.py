"""MessageBatch: calls built as they are sent, each exactly once, resumable."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import EncodeError
from celeriac.publish import MessageBuilder


def _batch(calls: list[list[Any]]) -> Any:
    app = Celery("t", broker="postgresql://unused", celeriac_schema="unused")
    task = app.task(name="t.echo")(lambda *args: args)
    batch = MessageBuilder(app).build_batch("t.echo", calls, options={}, task_type=task)
    assert batch is not None
    return batch


def test_calls_are_built_as_rows_are_taken() -> None:
    batch = _batch([[1], [2], [3]])
    assert batch.headers == [] and batch.bodies == []  # nothing built before it is sent
    rows = batch.rows()
    task_id, headers, body = next(rows)
    assert (task_id, len(batch.headers)) == (batch.task_ids[0], 1)
    assert f'"id":"{task_id}"' in headers and body.startswith(b"[[1]")


def test_rows_left_off_half_way_resume_without_building_a_call_twice() -> None:
    batch = _batch([[1], [2], [3]])
    first = next(batch.rows())  # a COPY that failed after its first row
    again = list(batch.rows())  # the retry
    assert again[0] == first
    assert [body[:4] for _, _, body in again] == [b"[[1]", b"[[2]", b"[[3]"]
    assert [task_id for task_id, _, _ in again] == batch.task_ids
    assert len(batch.headers) == len(batch.bodies) == 3
    params = batch.params()
    assert params["headers"] == [headers for _, headers, _ in again]


def test_a_call_that_cannot_be_encoded_fails_when_it_is_built() -> None:
    batch = _batch([[1], [object()]])
    rows = batch.rows()
    next(rows)
    with pytest.raises(EncodeError):
        next(rows)
