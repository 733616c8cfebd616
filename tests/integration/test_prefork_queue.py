"""Prefork children holding several short jobs (worker/prefork.py): the parent still
knows which job a child runs, so a dead child, a terminate or a hard time limit concerns
exactly that job, and the jobs queued behind it go back untouched."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import serialization, states
from celeriac.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celeriac.message import Job, encode_body
from celeriac.worker import prefork
from celeriac.worker.executor import Outcome
from celeriac.worker.prefetch import UNKNOWN
from celeriac.worker.prefork import PreforkPool


class Events:
    """What the pool reported, with a way to wait for it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.outcomes: list[Outcome] = []
        self.lost: list[tuple[Job, BaseException]] = []
        self.released: list[Job] = []
        self.started: list[Job] = []

    def add(self, kind: str, item: Any) -> None:
        with self.cond:
            getattr(self, kind).append(item)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 60) -> None:
        """Until ``predicate()``: woken by each report, re-checked every 50 ms for the
        pool's own state (a replaced child reports nothing)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, (self.outcomes, self.lost, self.released)
                self.cond.wait(min(left, 0.05))


@pytest.fixture
def tasks(app: Any, tmp_path: Path) -> Any:
    @app.task(name="q.hold")
    def hold(marker: str, gate: str, seconds: float = 20) -> str:
        Path(marker).write_text("started")
        deadline = time.monotonic() + seconds
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "held"

    @app.task(name="q.quick")
    def quick(i: int) -> int:
        return i

    assert app.backend is not None  # set up in the parent, as the worker does before forking
    return app


_ids = iter(range(1, 10_000))


def _job(name: str, *args: Any, timelimit: tuple[Any, Any] = (None, None)) -> Job:
    n = next(_ids)
    body = encode_body(args, {}, None, serialization.JSON)
    headers = {"id": f"t{n}", "task": name, "timelimit": list(timelimit)}
    return Job(n, 1, f"t{n}", name, "celery", 0, None, None, 0, False, False, "application/json",
               headers, body)  # fmt: skip


def _started_pool(tasks: Any, events: Events, **options: Any) -> PreforkPool:
    """One pool process reporting to ``events`` (depth 8 unless ``options`` say)."""
    pool = PreforkPool(
        tasks,
        1,
        "q@test",
        on_outcome=lambda outcome: events.add("outcomes", outcome),
        on_lost=lambda job, exc: events.add("lost", (job, exc)),
        on_free=lambda: None,
        on_started=lambda job: events.add("started", job),
        on_release=lambda job: events.add("released", job),
        **{"depth": lambda: 8, **options},
    )
    pool.start()
    return pool


@pytest.fixture
def pool(tasks: Any) -> Iterator[tuple[PreforkPool, Events]]:
    events = Events()
    pool = _started_pool(tasks, events)
    yield pool, events
    pool.stop(cold=True)


def _wait_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _submit(pool: PreforkPool, jobs: list[Job]) -> None:
    for job in jobs:
        pool.submit(job)
    pool.flush()


def test_one_message_carries_several_jobs_and_each_is_answered(pool: Any) -> None:
    pool, events = pool
    assert pool.free_slots() == 1 and pool.room() == 8
    jobs = [_job("q.quick", i) for i in range(8)]
    _submit(pool, jobs)
    events.wait(lambda: len(events.outcomes) == 8)
    assert [o.job_id for o in events.outcomes] == [job.id for job in jobs]
    assert {o.status for o in events.outcomes} == {states.SUCCESS}
    # each marked started when it reached the front, in order, unless it also ended before
    # the reader looked (answered in the same read as the job ahead of it: no mark needed)
    started = [job.id for job in events.started]
    assert started[0] == jobs[0].id and started == sorted(set(started))
    assert set(started) <= {job.id for job in jobs}
    assert not pool.running and pool.room() == 8


def test_a_child_killed_with_queued_jobs_loses_only_the_running_one(
    pool: Any, tmp_path: Path
) -> None:
    pool, events = pool
    marker, gate = tmp_path / "started", tmp_path / "gate"
    holder = _job("q.hold", str(marker), str(gate))
    queued = [_job("q.quick", i) for i in range(5)]
    _submit(pool, [holder, *queued])
    _wait_file(marker)
    assert len(pool.running) == 6
    assert [slot.job.id for slot in pool.active() if not slot.queued] == [holder.id]
    pid = pool.children[0].process.pid
    pool.children[0].process.kill()
    events.wait(lambda: len(events.lost) == 1 and len(events.released) == 5)
    (job, exc), = events.lost  # fmt: skip
    assert job.id == holder.id
    assert isinstance(exc, WorkerLostError) and "signal 9 (SIGKILL)" in str(exc)
    assert [job.id for job in events.released] == [job.id for job in queued]
    assert not events.outcomes  # nothing that never ran is reported done or failed
    assert [job.id for job in events.started] == [holder.id]  # the others never started
    assert not pool.running
    events.wait(lambda: pool.free_slots() == 1)  # replaced
    assert pool.children[0].process.pid != pid


def test_terminate_of_a_queued_job_kills_its_child_when_it_gets_to_the_front(
    pool: Any, tmp_path: Path
) -> None:
    pool, events = pool
    marker, gate = tmp_path / "started", tmp_path / "gate"
    holder = _job("q.hold", str(marker), str(gate))
    target = _job("q.hold", str(tmp_path / "target"), str(tmp_path / "never"))
    after = _job("q.quick", 1)
    _submit(pool, [holder, target, after])
    _wait_file(marker)
    assert pool.terminate(target.task_id, signal.SIGTERM)
    time.sleep(0.2)  # a terminate must not touch the job the child runs now
    assert not events.lost and pool.children[0].process.is_alive()
    gate.touch()
    events.wait(lambda: len(events.lost) == 1 and len(events.released) == 1)
    assert [(o.job_id, o.status) for o in events.outcomes] == [(holder.id, states.SUCCESS)]
    (job, exc), = events.lost  # fmt: skip
    assert job.id == target.id and isinstance(exc, Terminated)
    assert [job.id for job in events.released] == [after.id]


def test_a_queued_jobs_hard_limit_runs_from_when_it_starts(pool: Any, tmp_path: Path) -> None:
    pool, events = pool
    marker, gate = tmp_path / "started", tmp_path / "gate"
    holder = _job("q.hold", str(marker), str(gate))
    never = str(tmp_path / "never")
    limited = _job("q.hold", str(tmp_path / "limited"), never, timelimit=(1, None))
    _submit(pool, [holder, limited])
    _wait_file(marker)
    time.sleep(1.5)  # longer than the queued job's limit: it has not started yet
    assert not events.lost
    gate.touch()
    _wait_file(tmp_path / "limited")
    began = time.monotonic()
    events.wait(lambda: len(events.lost) == 1)
    (job, exc), = events.lost  # fmt: skip
    assert job.id == limited.id and isinstance(exc, TimeLimitExceeded)
    assert time.monotonic() - began > 0.5  # its own second, not the holder's time
    assert [(o.job_id, o.status) for o in events.outcomes] == [(holder.id, states.SUCCESS)]


def test_room_never_exceeds_max_tasks_per_child(tasks: Any) -> None:
    events = Events()
    pool = _started_pool(tasks, events, max_tasks_per_child=3)
    try:
        assert pool.room() == 3
        first = pool.children[0].process.pid
        _submit(pool, [_job("q.quick", i) for i in range(3)])
        assert pool.room() == 0
        events.wait(lambda: len(events.outcomes) == 3)
        events.wait(lambda: pool.free_slots() == 1 and pool.children[0].process.pid != first)
        assert pool.room() == 3 and not events.lost
    finally:
        pool.stop(cold=True)


def test_jobs_never_sent_to_a_child_that_died_go_back_untouched(pool: Any) -> None:
    pool, events = pool
    jobs = [_job("q.quick", i) for i in range(3)]
    for job in jobs:
        pool.submit(job)  # not flushed: the child never got them
    pool.children[0].process.kill()
    events.wait(lambda: len(events.released) == 3)
    assert [job.id for job in events.released] == [job.id for job in jobs]
    assert not events.lost and not events.outcomes and not pool.running


def test_only_jobs_known_to_be_short_wait_in_a_busy_childs_queue(
    tasks: Any, tmp_path: Path
) -> None:
    """After very short jobs the overall average says "short", but a task not seen yet
    (or a long one) must not wait behind a running job while another child could be idle:
    each job is weighed by its own task's average (Prefetch.cost)."""
    events = Events()
    costs = {"q.quick": 0.0001, "q.slow": 0.25}
    pool = _started_pool(
        tasks, events, depth=lambda: 128, cost=lambda name: costs.get(name, UNKNOWN)
    )
    try:
        marker, gate = tmp_path / "started", tmp_path / "gate"
        _submit(pool, [_job("q.hold", str(marker), str(gate))])  # unknown: an idle child
        _wait_file(marker)
        assert not pool.accepts(_job("q.quick", 0))  # nothing waits behind an unknown task
        with pytest.raises(RuntimeError):
            pool.submit(_job("q.quick", 0))
        gate.write_text("open")
        events.wait(lambda: pool.free_slots() == 1)
        quick = [_job("q.quick", i) for i in range(40)]  # 4 ms of expected work: all fit
        assert all(pool.accepts(job) for job in quick[:1])
        _submit(pool, quick)
        assert not pool.accepts(_job("q.slow", 0)) and not pool.accepts(_job("q.other", 0))
        events.wait(lambda: len(events.outcomes) == 41)
        assert pool.accepts(_job("q.slow", 0))  # idle again: anything goes
    finally:
        pool.stop(cold=True)


def test_an_outcome_the_parent_cannot_read_loses_only_its_job(
    tasks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer in the middle of a child's queue arrives unreadable: exactly its job is
    reported lost, saying why; the answers around it are delivered, the child goes on."""
    jobs = [_job("q.quick", i) for i in range(3)]
    answer = prefork._answer

    def corrupting(conn: Any, outcome: Outcome) -> None:  # (the children inherit it)
        if outcome.task_id != jobs[1].task_id:
            answer(conn, outcome)
            return
        body = b"\x80\x05not a pickle"
        os.write(conn.fileno(), prefork.FRAME.pack(len(body)) + body)

    monkeypatch.setattr(prefork, "_answer", corrupting)
    events = Events()
    pool = _started_pool(tasks, events)
    try:
        _submit(pool, jobs)
        events.wait(lambda: len(events.outcomes) == 2 and len(events.lost) == 1)
        assert [o.job_id for o in events.outcomes] == [jobs[0].id, jobs[2].id]
        ((job, error),) = events.lost
        assert job.id == jobs[1].id and isinstance(error, WorkerLostError)
        assert "could not be read" in str(error) and not events.released
        assert not pool.running and pool.room() == 8
        later = _job("q.quick", 9)
        _submit(pool, [later])  # the same child serves on
        events.wait(lambda: len(events.outcomes) == 3)
        assert events.outcomes[-1].job_id == later.id
    finally:
        pool.stop(cold=True)
