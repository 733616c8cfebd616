"""Claim order: priority first, then the oldest place in the queue — and a workflow's later
steps (chord bodies, chain steps, callbacks) keep their workflow's place, so a request's
last step does not queue behind later requests' work (broker.py, ``jobs.sort_key``)."""

from __future__ import annotations

from typing import Any

from celeriac import chain, chord
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

from .inline_worker import HOSTNAME, claim, job_rows

SLOTS = 2


def _tasks(app: Any) -> tuple[Any, Any]:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    return add, tsum


def _run(app: Any, jobs: list[Any]) -> None:
    """Run claimed jobs here and record their outcomes (one worker transaction)."""
    outcomes = [Execution(app, job, HOSTNAME).run() for job in jobs]
    with app.database.connection() as conn:
        app.broker.commit(conn, to_batch(outcomes), HOSTNAME, 3600.0)


def _chords(app: Any, count: int) -> list[Any]:
    add, tsum = _tasks(app)
    return [chord([add.s(r, i) for i in range(SLOTS)])(tsum.s()) for r in range(count)]


def test_a_chord_body_goes_before_later_requests_headers(app: Any) -> None:
    bodies = _chords(app, 3)
    header = claim(app, limit=SLOTS)
    assert {job.headers["group"] for job in header} == {bodies[0].parent.id}
    _run(app, header)  # the body is published now, after the other requests' headers
    (first,) = claim(app, limit=1)
    assert first.task_id == bodies[0].id
    _run(app, [first])
    assert bodies[0].get(timeout=1) == 1
    # then request 1's header, its body, request 2's header...
    for body in bodies[1:]:
        header = claim(app, limit=SLOTS)
        assert {job.headers["group"] for job in header} == {body.parent.id}
        _run(app, header)
        (first,) = claim(app, limit=1)
        assert first.task_id == body.id


def test_a_chain_step_keeps_its_chains_place(app: Any) -> None:
    add, _ = _tasks(app)
    result = chain(add.s(1, 1), add.s(10)).apply_async()
    later = [add.delay(0, i) for i in range(3)]
    (step,) = claim(app, limit=1)
    assert step.task_id == result.parent.id
    _run(app, [step])
    (second,) = claim(app, limit=1)
    assert second.task_id == result.id  # before the three published after the chain
    _run(app, [second])
    assert result.get(timeout=1) == 12
    assert [job.task_id for job in claim(app)] == [r.id for r in later]


def test_a_link_callback_keeps_its_parents_place(app: Any) -> None:
    add, _ = _tasks(app)
    add.apply_async((1, 2), link=add.s(100))
    later = add.delay(0, 0)
    _run(app, claim(app, limit=1))
    (callback,) = claim(app, limit=1)
    assert callback.task_id != later.id and callback.task_name == add.name


def test_priority_still_comes_first(app: Any) -> None:
    bodies = _chords(app, 2)
    _run(app, claim(app, limit=SLOTS))
    add, _ = _tasks(app)
    urgent = add.apply_async((5, 5), priority=9)
    assert [job.task_id for job in claim(app, limit=2)] == [urgent.id, bodies[0].id]


def test_scheduled_and_retried_jobs_take_their_place_at_their_eta(app: Any) -> None:
    add, _ = _tasks(app)
    result = chain(add.s(1, 1), add.s(10).set(countdown=60)).apply_async()
    _run(app, claim(app, limit=1))
    (later_step,) = [row for row in job_rows(app) if row["task_id"] == result.id]
    # due later: placed at its eta, so not-yet-due jobs stay behind due ones in the index
    assert later_step["sort_key"] == later_step["eta"]

    @app.task(bind=True, max_retries=1, default_retry_delay=30)
    def flaky(self: Any) -> None:
        raise self.retry()

    retried = flaky.delay()
    _run(app, claim(app, limit=1))
    (row,) = [row for row in job_rows(app) if row["task_id"] == retried.id]
    assert row["retries"] == 1 and row["sort_key"] == row["eta"] > row["created_at"]
