"""The chord join against the real database: counted in the recording transaction,
exactly once under concurrent commits, fenced, never deadlocking."""

from __future__ import annotations

import threading
from typing import Any

from celeriac import chain, chord, group, states
from celeriac.broker import Batch, Finish
from celeriac.exceptions import ChordError
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

from .inline_worker import HOSTNAME, claim, job_rows, run_jobs


def _tasks(app: Any) -> tuple[Any, Any]:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    return add, tsum


def _chord_rows(app: Any) -> int:
    with app.database.connection() as conn:
        row = conn.execute(f'SELECT count(*) FROM "{app.database.schema}".chords').fetchone()
    return int(row[0])


def _commit_concurrently(app: Any, batches: list[Batch]) -> None:
    """Commit each batch on its own connection, all released at the same moment."""
    barrier = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def commit(batch: Batch) -> None:
        conn = app.database.connect()
        try:
            barrier.wait()
            app.broker.commit(conn, batch, HOSTNAME, 3600.0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=commit, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_parts_ending_at_once_publish_the_body_exactly_once(app: Any) -> None:
    add, tsum = _tasks(app)
    results = [chord([add.s(n, i) for i in range(6)], tsum.s()).apply_async() for n in range(10)]
    jobs = claim(app, limit=100)
    assert len(jobs) == 60 and _chord_rows(app) == 10
    outcomes = [Execution(app, job, HOSTNAME).run() for job in jobs]
    # six committers, each holding one part of every chord: all ten counters reach zero
    # in a race between six transactions
    _commit_concurrently(app, [to_batch(outcomes[k::6]) for k in range(6)])
    bodies = [row for row in job_rows(app) if row["task_name"] == tsum.name]
    assert len(bodies) == 10
    assert sorted(row["task_id"] for row in bodies) == sorted(r.id for r in results)
    assert _chord_rows(app) == 0
    run_jobs(app)
    assert [r.get(timeout=5) for r in results] == [6 * n + 15 for n in range(10)]


def test_batches_locking_chords_in_opposite_orders_do_not_deadlock(app: Any) -> None:
    add, tsum = _tasks(app)
    first, second = (chord([add.s(1, 1), add.s(2, 2)], tsum.s()) for _ in range(2))
    a, b = first.apply_async(), second.apply_async()
    outcomes = {o.task_id: o for o in (Execution(app, j, HOSTNAME).run() for j in claim(app))}
    a_parts = [outcomes[r.id] for r in a.parent.results]
    b_parts = [outcomes[r.id] for r in b.parent.results]
    _commit_concurrently(
        app, [to_batch([a_parts[0], b_parts[0]]), to_batch([b_parts[1], a_parts[1]])]
    )
    run_jobs(app)
    assert a.get(timeout=5) == 6 and b.get(timeout=5) == 6


def test_a_fenced_outcome_does_not_count(app: Any) -> None:
    add, tsum = _tasks(app)
    result = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    first, second = claim(app)
    stale = Finish(
        first.id, first.attempt + 1, first.task_id, states.SUCCESS, "application/json", b"2"
    )
    with app.database.connection() as conn:
        assert app.broker.commit(conn, Batch(finished=[stale]), HOSTNAME, 60.0) == set()
    with app.database.connection() as conn:
        row = conn.execute(f'SELECT remaining FROM "{app.database.schema}".chords').fetchone()
    assert row is not None and row[0] == 2
    outcomes = [Execution(app, job, HOSTNAME).run() for job in (first, second)]
    with app.database.connection() as conn:
        app.broker.commit(conn, to_batch(outcomes), HOSTNAME, 60.0)
    run_jobs(app)
    assert result.get(timeout=5) == 6


def test_header_parts_recorded_one_at_a_time_join_the_chord(app: Any) -> None:
    """A lone outcome is written by the single-outcome statement, which leaves chord
    members to the transaction that joins their chord: each part still counts once and
    the last one publishes the body."""
    add, tsum = _tasks(app)
    result = chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], tsum.s()).apply_async()
    for job in claim(app):
        with app.database.connection() as conn:
            outcome = Execution(app, job, HOSTNAME).run()
            assert app.broker.commit(conn, to_batch([outcome]), HOSTNAME, 60.0) == {job.id}
    assert [row["task_name"] for row in job_rows(app)] == [tsum.name]
    run_jobs(app)
    assert result.get(timeout=5) == 12


def test_header_results_are_kept_even_when_the_task_ignores_results(app: Any) -> None:
    @app.task(ignore_result=True)
    def quiet(x: int) -> int:
        return x * 10

    _, tsum = _tasks(app)
    result = chord([quiet.s(1), quiet.s(2)], tsum.s()).apply_async()
    run_jobs(app)
    run_jobs(app)
    assert result.get(timeout=5) == 30


def test_empty_header_runs_the_body_with_an_empty_list(app: Any) -> None:
    _, tsum = _tasks(app)
    result = chord([], tsum.s()).apply_async()
    run_jobs(app)
    assert result.get(timeout=5) == 0


def test_nested_chord_in_a_header_counts_for_the_outer_chord(app: Any) -> None:
    add, tsum = _tasks(app)
    inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    result = chord([inner, add.s(10, 10)], tsum.s()).apply_async()
    while run_jobs(app):
        pass
    assert result.get(timeout=5) == 26
    assert _chord_rows(app) == 0


def test_a_dead_lettered_part_still_joins_with_chord_error(app: Any) -> None:
    add, tsum = _tasks(app)
    # a header message this worker refuses to decode (pickle is not accepted)
    result = chord([add.s(1, 1), add.s(2, 2).set(serializer="pickle")], tsum.s()).apply_async()
    run_jobs(app)
    run_jobs(app)
    error = result.get(timeout=5, propagate=False)
    assert isinstance(error, ChordError) and "ContentDisallowed" in str(error)
    assert _chord_rows(app) == 0


def test_publishing_inside_a_transaction_that_rolls_back_leaves_nothing(app: Any) -> None:
    add, tsum = _tasks(app)
    app.ensure_schema()
    with app.database.connection() as conn:
        conn.autocommit = False
        chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async(connection=conn)
        conn.rollback()
        conn.autocommit = True
    assert job_rows(app) == [] and _chord_rows(app) == 0


def test_group_ending_a_chord_body_inside_a_chain_becomes_a_chord(app: Any) -> None:
    add, tsum = _tasks(app)
    body = chain(tsum.s(), group(add.s(1), add.s(2)))  # ends in a group...
    workflow = chain(chord([add.s(1, 1)], body), tsum.s())  # ...which the chain continues
    result = workflow.apply_async()
    while run_jobs(app):
        pass
    assert result.get(timeout=5) == 7  # tsum([2 + 1, 2 + 2])
    assert _chord_rows(app) == 0


def test_revoking_a_group_reaches_every_member(app: Any) -> None:
    add, _ = _tasks(app)
    result = group(add.s(i, i) for i in range(3)).apply_async()
    result.revoke()
    assert [r.state for r in result.results] == [states.REVOKED] * 3
    assert run_jobs(app) == 0


def test_a_batch_of_plain_finishes_and_chord_parts_is_recorded_whole(app: Any) -> None:
    """Plain finishes go in one autocommit statement; the chord parts beside them are
    recorded in the transaction that joins their chord (Broker.commit's two paths)."""
    add, tsum = _tasks(app)
    plain = add.delay(10, 10)
    joined = chord([add.s(1, 1), add.s(2, 2)])(tsum.s())
    jobs = claim(app)
    assert len(jobs) == 3
    outcomes = [Execution(app, job, HOSTNAME).run() for job in jobs]
    with app.database.connection() as conn:
        accepted = app.broker.commit(conn, to_batch(outcomes), HOSTNAME, 3600.0)
    assert accepted == {job.id for job in jobs}
    assert plain.get(timeout=5) == 20
    assert [row["task_name"] for row in job_rows(app)] == [tsum.name]  # the body, once
    assert _chord_rows(app) == 0
    run_jobs(app)
    assert joined.get(timeout=5) == 6
