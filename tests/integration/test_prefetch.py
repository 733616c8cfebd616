"""Prefetched jobs (claimed ahead of free slots): never lost, never run twice, never
failed for a death they did not see (worker/prefetch.py)."""

from __future__ import annotations

from typing import Any

import psycopg

from celeriac import states
from celeriac.broker import Batch
from celeriac.message import Job
from celeriac.worker.completer import to_batch
from celeriac.worker.consumer import Consumer
from celeriac.worker.executor import Outcome
from celeriac.worker.maintenance import Maintenance
from celeriac.worker.prefetch import BUDGET, MAX_AHEAD, SHORT, Prefetch

GONE = 987_654  # a worker id with no row: its jobs are orphans


def _rows(app: Any) -> list[tuple[str, str, bool]]:
    with app.database.connection() as conn:
        return conn.execute(
            f'SELECT task_id, state, claimed_at IS NOT NULL FROM "{app.database.schema}".jobs '
            "ORDER BY id"
        ).fetchall()


def _noop(app: Any) -> Any:
    @app.task
    def noop(i: int) -> int:
        return i

    return noop


def _rescue(app: Any) -> int:
    maintenance = Maintenance(app, "rescuer@test", 1.0, 1.0, 60.0)
    with app.database.connection() as conn, conn.transaction():
        return maintenance.rescue(conn)


def test_claim_starts_only_the_first_jobs(app: Any) -> None:
    noop = _noop(app)
    sent = [noop.delay(i).id for i in range(4)]
    with app.database.connection() as conn:
        jobs = app.broker.claim(conn, "celery", 3, GONE, start=1)
    assert len(jobs) == 3
    assert _rows(app) == [
        (sent[0], "running", True),
        (sent[1], "running", False),
        (sent[2], "running", False),
        (sent[3], "queued", False),
    ]


def test_only_prefetched_jobs_get_a_started_mark(app: Any) -> None:
    """A job the claim started (claimed_at set) needs no mark when it reaches a pool
    process; a prefetched one does (prefork reports both through ``mark_started``)."""
    noop = _noop(app)
    for i in range(2):
        noop.delay(i)
    with app.database.connection() as conn:
        first, ahead = app.broker.claim(conn, "celery", 2, GONE, start=1)
    assert (first.started, ahead.started) == (True, False)
    outcomes: list[Outcome] = []
    consumer, _ = _consumer(app, outcomes)
    consumer.mark_started(first)
    consumer.mark_started(ahead)
    assert [(o.kind, o.job_id) for o in outcomes] == [("started", ahead.id)]


def test_rescue_requeues_prefetched_jobs_and_fails_started_ones(app: Any) -> None:
    noop = _noop(app)
    started, prefetched = noop.delay(1), noop.delay(2)
    with app.database.connection() as conn:
        app.broker.claim(conn, "celery", 2, GONE, start=1)
    assert _rescue(app) == 2
    assert _rows(app) == [(prefetched.id, "queued", False)]
    assert started.state == states.FAILURE
    assert prefetched.state == states.PENDING


def test_a_prefetched_job_marked_started_is_rescued_as_started(app: Any) -> None:
    noop = _noop(app)
    result = noop.delay(1)
    with app.database.connection() as conn:
        (job,) = app.broker.claim(conn, "celery", 1, GONE, start=0)
        app.broker.commit(conn, Batch(started=[(job.id, job.attempt)]), "w", 60.0)
    assert _rows(app) == [(result.id, "running", True)]
    _rescue(app)
    assert result.state == states.FAILURE


def test_started_marks_go_with_finishes_in_one_statement_and_are_fenced(app: Any) -> None:
    """A batch of finishes carries the started marks of jobs begun since (one statement,
    finish_alone): the marked job is rescued as started; a stale mark changes nothing."""
    from celeriac.broker import Finish

    noop = _noop(app)
    done, marked, stale = (noop.delay(i) for i in range(3))
    statements: list[bytes] = []

    class Counting(psycopg.Cursor[Any]):  # every statement, on any cursor of the connection
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(query)
            return super().execute(query, *args, **kwargs)

    with app.database.connect(cursor_factory=Counting) as conn:
        jobs = {j.task_id: j for j in app.broker.claim(conn, "celery", 3, GONE, start=1)}
        finished, begun, old = jobs[done.id], jobs[marked.id], jobs[stale.id]
        statements.clear()
        batch = Batch(
            finished=[
                Finish(finished.id, finished.attempt, done.id, "SUCCESS", "application/json", b"1")
            ],
            started=[(begun.id, begun.attempt), (old.id, old.attempt + 1)],
        )
        assert app.broker.commit(conn, batch, "w", 60.0) == {finished.id}
    assert len(statements) == 1
    assert _rows(app) == [(marked.id, "running", True), (stale.id, "running", False)]
    assert done.get(timeout=5) == 1


class FakePool:
    """Two slots that accept jobs and never finish them."""

    limit = 2
    marks_started = False  # the consumer marks prefetched jobs it starts (threads, solo)
    inline = False

    def __init__(self) -> None:
        self.submitted: list[Job] = []

    def free_slots(self) -> int:
        return self.limit - len(self.submitted)

    room = free_slots

    def accepts(self, job: Job) -> bool:
        return self.free_slots() > 0

    def submit(self, job: Job) -> None:
        self.submitted.append(job)

    def flush(self) -> None:
        pass

    def active(self) -> list[Any]:
        return []


def _consumer(
    app: Any, outcomes: list[Outcome], behind: Any = lambda: False
) -> tuple[Consumer, FakePool]:
    pool = FakePool()
    consumer = Consumer(
        app,
        pool,
        ["celery"],
        "c@test",
        lambda: GONE,
        outcomes.append,
        0.01,  # type: ignore[arg-type]
        prefetch_multiplier=4,
        behind=behind,
    )
    return consumer, pool


def test_nothing_is_claimed_while_the_outcomes_are_behind(app: Any) -> None:
    """Backpressure: while more outcomes wait to be written than the completer's backlog
    allows, the consumer claims nothing; it claims again once the backlog is down."""
    from celeriac.worker.completer import BACKLOG, Completer

    noop = _noop(app)
    noop.delay_many([(i,) for i in range(10)])
    completer = Completer(app.broker, app.database, "c@test", 60.0)  # not started: no writes
    outcomes: list[Outcome] = []
    consumer, pool = _consumer(app, outcomes, behind=completer.behind)
    consumer.prefetch.observe(SHORT / 2)
    for n in range(BACKLOG + 1):
        completer.add(Outcome(n, 1, f"t{n}", "noop", "finish", "SUCCESS"))
    consumer.step()
    assert pool.submitted == [] and len(consumer.prefetch) == 0
    assert [state for _, state, _ in _rows(app)] == ["queued"] * 10
    completer.pending.popleft()  # written, say: down to the backlog allowed
    consumer.step()
    assert len(pool.submitted) == 2
    consumer._reset()


def test_a_write_the_consumer_waited_on_wakes_it(app: Any) -> None:
    """The completer calls ``written`` after a write that ``behind`` was found true on
    (the consumer waits for that), and not after writes nobody waited on."""
    import threading

    from celeriac.worker.completer import BACKLOG, Completer

    completer = Completer(app.broker, app.database, "c@test", 60.0)
    woken = threading.Event()
    completer.written = woken.set
    for n in range(BACKLOG + 1):  # outcomes of jobs that do not exist: written, refused
        completer.add(Outcome(n, 1, f"t{n}", "noop", "finish", "SUCCESS"))
    assert completer.behind()
    completer.start()
    try:
        assert woken.wait(30)
        assert completer.flush(30)
        woken.clear()
        completer.add(Outcome(BACKLOG + 1, 1, "late", "noop", "finish", "SUCCESS"))
        assert completer.flush(30)
        assert not woken.is_set()  # nobody found it behind since
    finally:
        completer.stop(timeout=30)


def test_outcomes_gather_while_more_are_on_their_way(app: Any) -> None:
    """While ``gather`` says other jobs still run (the threads pool), the writer holds an
    outcome back for the next ones, up to ``gather_time``; it writes as soon as the last
    running job has ended."""
    from celeriac.worker.completer import Completer

    completer = Completer(app.broker, app.database, "c@test", 60.0)
    writes: list[list[int]] = []
    commit = completer._commit

    def counted(outcomes: list[Outcome]) -> set[int]:
        writes.append([o.job_id for o in outcomes])
        return commit(outcomes)

    running = [True]
    completer._commit = counted  # type: ignore[method-assign]
    completer.gather = lambda: running[0]
    completer.gather_time = 60.0  # (longer than the test: only the last job's end ends it)
    completer.start()
    try:
        completer.add(Outcome(1, 1, "t1", "noop", "finish", "SUCCESS"))
        assert not completer.flush(0.3)  # held back: another job still runs
        running[0] = False
        completer.add(Outcome(2, 1, "t2", "noop", "finish", "SUCCESS"))  # it ended
        assert completer.flush(10)
    finally:
        completer.stop(timeout=30)
    assert writes == [[1, 2]]


def test_consumer_claims_ahead_only_for_short_jobs(app: Any) -> None:
    noop = _noop(app)
    noop.delay_many([(i,) for i in range(40)])
    outcomes: list[Outcome] = []
    consumer, pool = _consumer(app, outcomes)
    consumer.step()  # nothing observed yet: claims only the free slots
    assert len(pool.submitted) == 2 and len(consumer.prefetch) == 0
    consumer.prefetch.observe(SHORT / 2)
    pool.submitted.clear()
    consumer.step()  # short jobs: 2 slots + BUDGET's worth ahead (2 * 0.1 / 0.01)
    assert len(pool.submitted) == 2 and len(consumer.prefetch) == 20
    assert sum(1 for _, state, started in _rows(app) if state == "running" and started) == 4
    consumer.release_prefetched()
    consumer._reset()
    assert [o.kind for o in outcomes] == ["requeue"] * 20
    with app.database.connection() as conn:
        app.broker.commit(conn, to_batch(outcomes), "c@test", 60.0)
    assert sum(1 for _, state, _ in _rows(app) if state == "queued") == 36


def test_buffered_jobs_are_marked_started_when_they_leave(app: Any) -> None:
    noop = _noop(app)
    for i in range(8):
        noop.delay(i)
    outcomes: list[Outcome] = []
    consumer, pool = _consumer(app, outcomes)
    consumer.prefetch.observe(0.0)
    consumer.step()
    pool.submitted.clear()  # both slots free again
    consumer.step()
    consumer._reset()
    assert [o.kind for o in outcomes] == ["started", "started"]
    with app.database.connection() as conn:
        app.broker.commit(conn, to_batch(outcomes), "c@test", 60.0)
    assert sum(1 for _, _, started in _rows(app) if started) == 4


def test_a_job_revoked_while_buffered_leaves_revoked() -> None:
    prefetch = Prefetch(lambda: 1, 4)
    job = Job(1, 1, "t1", "noop", "celery", 0, None, None, 0, False, False, "json", {}, b"")
    prefetch.put([job])
    prefetch.revoke(["t1"])
    taken = prefetch.take()
    assert taken is not None and taken.revoked


def test_long_jobs_get_no_buffer() -> None:
    prefetch = Prefetch(lambda: 4, 4)
    assert prefetch.capacity() == 0
    prefetch.observe(SHORT * 10)
    assert prefetch.capacity() == 0
    for _ in range(30):
        prefetch.observe(SHORT * 0.9)
    assert prefetch.average is not None
    assert prefetch.capacity() == int(4 * BUDGET / prefetch.average)


def test_very_short_jobs_fill_the_budget_up_to_a_cap() -> None:
    prefetch = Prefetch(lambda: 4, 4)
    prefetch.observe(0.005)
    assert prefetch.capacity() == int(4 * BUDGET / 0.005)
    for _ in range(50):
        prefetch.observe(0.0)
    assert prefetch.capacity() == MAX_AHEAD
    generous = Prefetch(lambda: 2, 50)
    generous.observe(SHORT * 0.9)
    assert generous.capacity() == 2 * 49  # Celery's count, when it is more than BUDGET's worth
    unbuffered = Prefetch(lambda: 2, 1)
    unbuffered.observe(0.0)
    assert unbuffered.capacity() == 0


def test_buffer_goes_back_to_the_queue_when_jobs_turn_long(app: Any) -> None:
    noop = _noop(app)
    for i in range(10):
        noop.delay(i)
    outcomes: list[Outcome] = []
    consumer, _pool = _consumer(app, outcomes)
    consumer.prefetch.observe(0.0)
    consumer.step()  # short jobs: 2 started, the other 8 buffered (BUDGET)
    assert len(consumer.prefetch) == 8
    for _ in range(10):
        consumer.prefetch.observe(SHORT * 10)
    consumer.step()  # long now: the buffer would hold up older work queued since
    consumer._reset()
    assert len(consumer.prefetch) == 0 and outcomes == []
    # given back on the consumer's own connection, before its next claim
    assert sum(1 for _, state, _ in _rows(app) if state == "queued") == 8
    assert sum(1 for _, state, started in _rows(app) if state == "running" and started) == 2


def test_a_freed_slot_claims_nothing_until_a_job_is_announced(app: Any) -> None:
    """After a claim that found nothing, a freed slot alone does not claim again (every
    publish NOTIFYs; this consumer has no listener, so it hears none): the NOTIFY's
    wake() does, and so would the poll interval."""
    noop = _noop(app)
    outcomes: list[Outcome] = []
    consumer, pool = _consumer(app, outcomes)
    consumer.step()  # empty queue: nothing claimed
    assert pool.submitted == [] and consumer.dry_since is not None
    consumer.poll_interval = 60.0  # the fallback poll is far away
    noop.delay(1)
    consumer.slot_freed()
    assert consumer._still_dry()  # a slot alone is no reason to claim
    consumer.wake()  # what the listener does for the job's NOTIFY
    assert not consumer._still_dry()
    consumer.step()
    consumer._reset()
    assert [job.task_name for job in pool.submitted] == [noop.name]


def test_a_short_claim_leaves_the_queues_dry(app: Any) -> None:
    """A claim that got fewer jobs than it asked for took every due job: the slot the
    job frees claims nothing more until a NOTIFY (a lone job on an idle worker: one claim,
    not a second one that finds nothing)."""
    noop = _noop(app)
    outcomes: list[Outcome] = []
    consumer, pool = _consumer(app, outcomes)
    consumer.poll_interval = 60.0
    noop.delay(1)
    consumer.step()
    assert [job.task_name for job in pool.submitted] == [noop.name]
    assert consumer.dry_since is not None
    consumer.slot_freed()
    assert consumer._still_dry()
    noop.delay(2)
    consumer.wake()
    consumer.step()
    consumer._reset()
    assert len(pool.submitted) == 2


def test_a_short_claim_says_when_the_next_job_is_due(app: Any) -> None:
    """The claim that drains a queue also reads its earliest scheduled job (the jobs it
    just claimed left out), so the worker knows how long it may sleep; a full claim
    doesn't look."""
    noop = _noop(app)
    first = noop.delay(1)
    scheduled = noop.apply_async((2,), countdown=600)
    with app.database.connection() as conn:
        eta = conn.execute(
            f'SELECT eta FROM "{app.database.schema}".jobs WHERE task_id = %s', (scheduled.id,)
        ).fetchone()[0]
        jobs, later = app.broker.claim_due(conn, "celery", 5, GONE)
        assert [job.task_id for job in jobs] == [first.id] and later == eta
        jobs, later = app.broker.claim_due(conn, "celery", 5, GONE)  # none due
        assert jobs == [] and later == eta
        third = noop.delay(3)
        jobs, later = app.broker.claim_due(conn, "celery", 1, GONE)  # full
        assert [job.task_id for job in jobs] == [third.id] and later is None


def test_a_dry_consumer_claims_again_at_the_poll_interval(app: Any) -> None:
    outcomes: list[Outcome] = []
    consumer, _ = _consumer(app, outcomes)
    consumer.step()
    assert consumer.dry_since is not None
    consumer.poll_interval = 60.0
    assert consumer._still_dry()
    consumer.dry_since -= 61.0  # a minute later: a missed notification is caught up
    assert not consumer._still_dry()
    consumer._reset()


class InlinePool(FakePool):
    """One slot that runs each job in the consumer's thread as it is submitted (as solo
    does), calling ``during`` with the job first."""

    limit = 1
    inline = True

    def __init__(self, during: Any = lambda job: None) -> None:
        super().__init__()
        self.during = during

    def free_slots(self) -> int:
        return self.limit

    room = free_slots

    def submit(self, job: Job) -> None:
        self.during(job)
        self.submitted.append(job)


def _inline_consumer(
    app: Any, outcomes: list[Outcome], pool: InlinePool, behind: Any = None
) -> Consumer:
    consumer = Consumer(
        app,
        pool,  # type: ignore[arg-type]
        ["celery"],
        "c@test",
        lambda: GONE,
        outcomes.append,
        0.01,
        prefetch_multiplier=4,
        behind=behind or (lambda: False),
    )
    consumer.prefetch.observe(SHORT / 2)  # short jobs: BUDGET / (SHORT / 2) = 10 ahead
    return consumer


def _inline_claimed(app: Any) -> tuple[Consumer, InlinePool, list[Outcome], list[Any]]:
    """11 jobs queued and one step taken: the first ran, the other 10 are buffered."""
    sent = _noop(app).delay_many([(i,) for i in range(11)])
    outcomes: list[Outcome] = []
    pool = InlinePool()
    consumer = _inline_consumer(app, outcomes, pool)
    consumer.step()
    assert len(pool.submitted) == 1 and len(consumer.prefetch) == 10
    return consumer, pool, outcomes, sent


def test_an_inline_pool_runs_the_whole_buffer_in_one_step(app: Any) -> None:
    """Solo runs a job inside ``submit``: one step runs every buffered job back to back,
    in order, each marked started as it leaves the buffer (a step per job cost a solo
    worker ~15 % of its CPU in a drain)."""
    consumer, pool, outcomes, sent = _inline_claimed(app)
    consumer.step()
    consumer._reset()
    assert [job.task_id for job in pool.submitted] == [r.id for r in sent]
    assert len(consumer.prefetch) == 0
    assert [o.kind for o in outcomes] == ["started"] * 10


def test_an_inline_pool_stops_running_its_buffer_when_the_worker_stops(app: Any) -> None:
    """A warm shutdown between two buffered jobs: nothing more starts, and the rest go
    back to the queue untouched."""
    consumer, pool, outcomes, _ = _inline_claimed(app)
    pool.during = lambda job: consumer.halt() if len(pool.submitted) == 3 else None
    consumer.step()
    assert len(pool.submitted) == 4 and len(consumer.prefetch) == 7
    consumer.release_prefetched()
    consumer._reset()
    assert [o.kind for o in outcomes] == ["started"] * 3 + ["requeue"] * 7


def test_an_inline_pool_gives_its_buffer_back_when_jobs_turn_long(app: Any) -> None:
    """A buffered job that ran long stops the loop; the next step gives the rest back
    before it claims again, as for the other pools."""
    consumer, pool, _, _ = _inline_claimed(app)

    def long(job: Job) -> None:
        if len(pool.submitted) == 2:
            for _ in range(10):
                consumer.prefetch.observe(SHORT * 10)

    pool.during = long
    consumer.step()  # ran 2 from the buffer; the second turned the average long
    assert len(pool.submitted) == 3 and len(consumer.prefetch) == 8
    consumer.step()  # gives the 8 back, then claims for its free slot alone
    consumer._reset()
    assert len(consumer.prefetch) == 0 and len(pool.submitted) == 4
    assert sum(1 for _, state, _ in _rows(app) if state == "queued") == 7


def test_an_inline_pool_looks_at_the_backlog_of_outcomes_while_it_runs(app: Any) -> None:
    """Every LOOK_BEHIND jobs the loop asks whether the completer is behind, and stops
    running the buffer if so (the next step waits for the write)."""
    from celeriac.worker.consumer import LOOK_BEHIND

    noop = _noop(app)
    noop.delay_many([(i,) for i in range(LOOK_BEHIND + 10)])
    outcomes: list[Outcome] = []
    pool = InlinePool()
    behind = [False]
    consumer = _inline_consumer(app, outcomes, pool, behind=lambda: behind[0])
    for _ in range(50):
        consumer.prefetch.observe(0.0)  # room for all of them
    consumer.step()
    assert len(consumer.prefetch) == LOOK_BEHIND + 9
    pool.during = lambda job: behind.__setitem__(0, True)  # behind from the first job on
    consumer.step()
    assert len(pool.submitted) == 1 + LOOK_BEHIND - 1  # it looked after LOOK_BEHIND - 1
    consumer.release_prefetched()
    consumer._reset()
