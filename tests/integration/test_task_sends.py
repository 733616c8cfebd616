"""What a running task sends with its outcome (retry(throw=False), replace()) is written
in the recording transaction: fenced like the outcome, and a replaced chord part is not
counted until its replacement ends."""

from __future__ import annotations

from typing import Any

from celeriac import chord, states
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

from .inline_worker import HOSTNAME, claim, job_rows, run_jobs


def _tasks(app: Any) -> Any:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(bind=True)
    def swap(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    @app.task(bind=True)
    def again(self: Any) -> str:
        if self.request.retries == 0:
            self.retry(countdown=0, throw=False)
        return f"run {self.request.retries}"

    return add, tsum, swap, again


def _remaining(app: Any) -> list[int]:
    with app.database.connection() as conn:
        rows = conn.execute(f'SELECT remaining FROM "{app.database.schema}".chords').fetchall()
    return [row[0] for row in rows]


def _run_stale(app: Any) -> None:
    """Run the claimed jobs, but record them with a stale fencing token (as a worker whose
    jobs were rescued and claimed again meanwhile)."""
    outcomes = [Execution(app, job, HOSTNAME).run() for job in claim(app)]
    for outcome in outcomes:
        outcome.attempt -= 1
    with app.database.connection() as conn:
        accepted = app.broker.commit(conn, to_batch(outcomes), HOSTNAME, 3600.0)
    assert not accepted


def test_a_replaced_chord_part_counts_only_when_its_replacement_ends(app: Any) -> None:
    add, tsum, swap, _ = _tasks(app)
    result = chord([swap.s(1), add.s(2, 2)], tsum.s()).apply_async()
    assert _remaining(app) == [2]
    run_jobs(app)  # swap replaced itself; add ended
    assert _remaining(app) == [1]  # only add counted
    assert [row["task_name"] for row in job_rows(app)] == [add.name]  # the replacement
    run_jobs(app)  # the replacement ends, the chord joins
    run_jobs(app)  # the body
    assert result.get(timeout=5) == 101 + 4


def test_a_replacement_is_not_written_when_the_outcome_is_refused(app: Any) -> None:
    _, _, swap, _ = _tasks(app)
    swap.delay(1)
    _run_stale(app)
    rows = job_rows(app)
    assert [(row["task_name"], row["state"]) for row in rows] == [(swap.name, "running")]


def test_a_retry_without_throw_is_not_written_when_the_outcome_is_refused(app: Any) -> None:
    *_, again = _tasks(app)
    result = again.delay()
    _run_stale(app)
    assert len(job_rows(app)) == 1  # only the original, still running (to be rescued)
    assert result.state == states.PENDING


def test_a_retry_without_throw_runs_again_under_the_same_id(app: Any) -> None:
    *_, again = _tasks(app)
    result = again.delay()
    run_jobs(app)
    assert app.AsyncResult(result.id).get(timeout=5) == "run 0"
    [retry] = job_rows(app)
    assert (retry["task_id"], retry["retries"], retry["state"]) == (result.id, 1, "queued")
    run_jobs(app)
    assert app.AsyncResult(result.id).get(timeout=5) == "run 1"
    assert job_rows(app) == []
