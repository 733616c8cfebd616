"""Claims, fencing and outcomes against the real database."""

from __future__ import annotations

from typing import Any

from celeriac import states
from celeriac.broker import Batch, Finish


def _job_count(app: Any) -> int:
    with app.database.connection() as conn:
        row = conn.execute(f'SELECT count(*) FROM "{app.database.schema}".jobs').fetchone()
    return int(row[0])


def test_claim_respects_limit_and_priority(app: Any) -> None:
    @app.task
    def noop(x: int) -> int:
        return x

    for i in range(5):
        noop.apply_async((i,), priority=i % 2)
    with app.database.connection() as conn:
        jobs = app.broker.claim(conn, "celery", 3, worker_id=1)
    assert len(jobs) == 3
    assert [job.priority for job in jobs] == [1, 1, 0]  # higher number first
    assert all(job.attempt == 1 for job in jobs)


def test_stale_fencing_token_is_refused(app: Any) -> None:
    @app.task
    def noop() -> None:
        return None

    result = noop.delay()
    with app.database.connection() as conn:
        (job,) = app.broker.claim(conn, "celery", 1, worker_id=1)
        stale = Finish(
            job.id, job.attempt + 1, job.task_id, states.SUCCESS, "application/json", b'"late"'
        )
        assert app.broker.commit(conn, Batch(finished=[stale]), "w1", 60.0) == set()
        good = Finish(job.id, job.attempt, job.task_id, states.SUCCESS, "application/json", b'"ok"')
        assert app.broker.commit(conn, Batch(finished=[good]), "w1", 60.0) == {job.id}
    assert result.get(timeout=1) == "ok"
    assert _job_count(app) == 0


def test_transactional_enqueue_rolls_back(app: Any) -> None:
    @app.task
    def noop() -> None:
        return None

    app.ensure_schema()
    with app.database.connection() as conn:
        conn.autocommit = False
        noop.apply_async(connection=conn)
        conn.rollback()
        conn.autocommit = True
    assert _job_count(app) == 0
    with app.database.connection() as conn:
        with conn.transaction():
            noop.apply_async(connection=conn)
    assert _job_count(app) == 1


def test_unknown_id_reads_pending(app: Any) -> None:
    result = app.AsyncResult("no-such-task")
    assert result.state == states.PENDING
    assert not result.ready()
