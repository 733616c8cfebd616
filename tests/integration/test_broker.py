"""Claims, fencing and outcomes against the real database."""

from __future__ import annotations

import re
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


def test_finish_fits_psycopgs_query_parse_cache() -> None:
    """psycopg caches its parsing of a query only up to 4,096 bytes; past that, every
    batch of outcomes re-parses the finish statement's ~30 placeholders (measured ~0.3 ms
    of worker CPU per batch here). The default schema's statements must stay under it."""
    from celeriac.db.queries import query

    assert len(query("finish", "celeriac")) <= 4096
    assert len(query("finish_alone", "celeriac")) <= 4096
    assert len(query("finish_one", "celeriac")) <= 4096


def test_a_finish_with_nothing_to_publish_sends_null_arrays(app: Any) -> None:
    """Finishes without callbacks pass NULL for the callback and chord arrays instead of
    adapting 18 empty lists; the parameters are the same either way."""
    from celeriac.message import ChordJoin, Message

    message = Message("t", "x", "celery", b"[]", "application/json", {})
    chord = ChordJoin("g", ("t",), "application/json", b"[]")
    full = app.broker._workflow_params(Batch(publish=[(1, message)], chords=[(1, chord)]))
    assert all(isinstance(value, list) and value for value in full.values())
    empty = app.broker._workflow_params(Batch())
    assert set(empty) == set(full)
    assert all(value is None for value in empty.values())


def test_a_claim_reads_the_time_limits_apart_and_leaves_the_headers_as_text(app: Any) -> None:
    """The worker's parent reads only the time limits: they come as columns and the
    headers as JSON text, parsed where they are read (the pool process). A time limit
    that is not a number is ignored, not a claim that fails for every job."""

    @app.task
    def noop() -> None:
        return None

    limited = noop.apply_async(time_limit=10, soft_time_limit=5)
    plain = noop.delay()
    odd = noop.delay()
    with app.database.connection() as conn:
        conn.execute(
            f'UPDATE "{app.database.schema}".jobs '
            """SET headers = jsonb_set(headers, '{timelimit}', '["ten", null]')"""
            " WHERE task_id = %s",
            (odd.id,),
        )
        jobs = {j.task_id: j for j in app.broker.claim(conn, "celery", 3, worker_id=1)}
    assert jobs[limited.id].time_limits() == (10.0, 5.0)
    assert jobs[plain.id].time_limits() == (None, None)
    assert jobs[odd.id].time_limits() == (None, None)
    job = jobs[limited.id]
    assert isinstance(job.header_data, str)
    assert job.headers["id"] == limited.id and job.headers["timelimit"] == [10.0, 5.0]


def test_a_batch_of_finishes_is_not_joined_to_the_running_jobs_in_a_nested_loop(
    app: Any,
) -> None:
    """The finish of a batch (``finish_alone``, with started marks as in a drain) joins
    its outcomes to the jobs they end, and its marks to the jobs they start. Without
    statistics, PostgreSQL once estimated that almost no running job passes the "not a
    group member" test (and the "not started yet" one) and chose nested loops that read
    every outcome (every mark) again for each running job: 500 outcomes against 800
    running jobs examined 400,000 pairs, 400 marks 160,000, and two solo workers draining
    20,000 tasks ran at a third of their speed. The plan is read from auto_explain (sent
    to this session as NOTICEs): the pairs a join examined and threw away stay in
    proportion to the batch."""

    @app.task
    def noop() -> None:
        return None

    noop.delay_many([()] * 10_000)
    plans: list[str] = []

    def finished(jobs: list[Any]) -> list[Finish]:
        return [
            Finish(j.id, j.attempt, j.task_id, states.SUCCESS, "application/json", b"null")
            for j in jobs
        ]

    with app.database.connection() as conn:
        for _ in range(20):  # a drain so far: its claims and finishes leave dead entries
            app.broker.commit(
                conn,
                Batch(finished=finished(app.broker.claim(conn, "celery", 400, 1))),
                "w@test",
                60.0,
            )
        # 800 claimed ahead (claimed_at NULL): 400 end, the other 400 start
        claimed, _ = app.broker.claim_due(conn, "celery", 800, 1, start=0)
        conn.commit()
        conn.autocommit = True
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_analyze = on")
        conn.execute("SET auto_explain.log_level = notice")
        ended, started = claimed[:400], claimed[400:]
        batch = Batch(finished=finished(ended), started=[(j.id, j.attempt) for j in started])
        accepted = app.broker.commit(conn, batch, "w@test", 60.0)
        conn.execute("RESET auto_explain.log_level")
    assert accepted == {j.id for j in ended}
    (plan,) = [p for p in plans if "DELETE FROM" in p]
    thrown_away = [int(n) for n in re.findall(r"Rows Removed by Join Filter: (\d+)", plan)]
    assert sum(thrown_away) <= 10 * len(ended), plan
