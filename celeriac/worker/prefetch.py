"""Jobs claimed ahead of free slots (Celery's prefetch) — only while jobs are short.

With short jobs a claim round trip costs as much as the job, so a slot that waits for
its own claim sits idle half the time. While the recent average runtime is under
``SHORT`` the consumer claims extra jobs in the same statement and hands them out as
slots free: Celery's ``concurrency * (prefetch_multiplier - 1)``, or, when jobs are so
short that this is less than ``BUDGET`` seconds of the pool's work, as many as fill
``BUDGET`` (at most ``MAX_AHEAD``). Each claim and each recorded batch is a commit; a
drain of no-op jobs claiming 6 at a time spent most of its time (and most of
PostgreSQL's CPU) on those commits. ``prefetch_multiplier = 1`` still means no
buffer at all. Long jobs get no buffer:
holding work another worker could start would cost more than the round trip saves
(and would delay a chord's callback behind later work). When the average turns long
while jobs are buffered, the consumer gives the buffer back to the queue at once, so
work queued since in an older place (a chord's callback, broker.py's claim order) is
not held up behind it.

A buffered job is claimed but not started: the claim leaves its ``claimed_at`` NULL, so
if the worker dies the rescuer queues it again untouched, as a broker redelivers an
unacknowledged prefetched message. When it leaves the buffer the completer's next write
sets ``claimed_at`` (batched with outcomes, as Celery's early ack is sent asynchronously).
Warm and cold shutdown give buffered jobs back; a revoke that arrives while one waits
here is honoured when it leaves.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable

from celeriac.message import Job

SHORT = 0.02  # seconds: jobs shorter than this on average are worth claiming ahead
BUDGET = 0.1  # seconds of the pool's work the buffer may hold while jobs are short
# seconds: a job's cost as counted against BUDGET is at least this, the worker's own time
# per job (claim, hand-over, record: ~0.25 ms of a 2-process drain at 8,000 tasks/s),
# which a no-op body's measured runtime leaves out. At 1 ms, a drain of no-op jobs claimed
# 100 at a time; at 0.25 ms, 400: PostgreSQL's CPU a task fell 9-22 % and all CPU a task
# 2-16 % (bench.cpu, three A/B pairs). Jobs of 1 ms or more get the same buffer as before
FLOOR = 0.00025
MAX_AHEAD = 1024
DEPTH_BUDGET = 0.005  # seconds of work a prefork process may hold queued behind its job
MAX_DEPTH = 128
REVOKED_KEPT = 10_000
TASKS_KEPT = 1_000  # task names whose average runtime is kept
UNKNOWN = 3600.0  # seconds: what a job of a task not seen yet counts as (Prefetch.cost)


class Prefetch:
    """The consumer's buffer of claimed-but-not-started jobs."""

    def __init__(self, concurrency: Callable[[], int], multiplier: int) -> None:
        self.concurrency = concurrency
        self.multiplier = max(1, int(multiplier or 1))
        self.jobs: deque[Job] = deque()
        self.lock = threading.Lock()
        self.average: float | None = None
        self.by_task: dict[str, float] = {}
        self.revoked: dict[str, None] = {}

    def observe(self, runtime: float, task_name: str | None = None) -> None:
        """Feed a finished job's runtime (moving averages: all jobs, and its task's)."""
        self.average = runtime if self.average is None else 0.8 * self.average + 0.2 * runtime
        if task_name is not None:
            old = self.by_task.pop(task_name, None)  # (re-inserted: the most recent last)
            self.by_task[task_name] = runtime if old is None else 0.8 * old + 0.2 * runtime
            if len(self.by_task) > TASKS_KEPT:
                del self.by_task[next(iter(self.by_task))]

    def cost(self, task_name: str) -> float:
        """How long a job of ``task_name`` is expected to run, to decide whether it may wait
        in a prefork process's queue (at most DEPTH_BUDGET of expected work waits there):
        its task's recent average. A task not seen yet is taken as long, so it only goes
        to an idle process — the overall average is no guide to it: after a few very short
        jobs, 0.25 s jobs were queued 16 deep in one process while others sat idle."""
        return self.by_task.get(task_name, UNKNOWN)

    def capacity(self) -> int:
        if self.average is None or self.average > SHORT or self.multiplier <= 1:
            return 0
        concurrency = self.concurrency()
        celery = concurrency * (self.multiplier - 1)
        budget = int(concurrency * BUDGET / max(self.average, FLOOR))
        return max(celery, min(budget, MAX_AHEAD))

    def short(self) -> bool:
        """Jobs are short enough to be buffered (``capacity()`` is not 0), cheaply."""
        average = self.average
        return average is not None and average <= SHORT and self.multiplier > 1

    def depth(self) -> int:
        """How many jobs one prefork process may hold (the one it runs and those queued
        behind it): 1 unless jobs are so short that ``DEPTH_BUDGET`` fits several."""
        if not self.capacity():
            return 1
        assert self.average is not None
        return max(
            1, min(MAX_DEPTH, int(DEPTH_BUDGET / max(self.average, DEPTH_BUDGET / MAX_DEPTH)))
        )

    def room(self) -> int:
        """How many jobs to claim ahead now: refill only once the buffer is half empty."""
        capacity = self.capacity()
        with self.lock:
            held = len(self.jobs)
        return capacity - held if held <= capacity // 2 else 0

    def put(self, jobs: Iterable[Job]) -> None:
        with self.lock:
            self.jobs.extend(jobs)

    def take(self, accept: Callable[[Job], bool] | None = None) -> Job | None:
        """The next buffered job (revoked meanwhile: marked so the executor refuses it);
        None if there is none or ``accept`` refuses it (it stays first)."""
        with self.lock:
            if not self.jobs or (accept is not None and not accept(self.jobs[0])):
                return None
            job = self.jobs.popleft()
            if job.task_id in self.revoked:
                return dataclasses.replace(job, revoked=True)
            return job

    def revoke(self, task_ids: Iterable[str]) -> None:
        with self.lock:
            for task_id in task_ids:
                self.revoked[task_id] = None
            while len(self.revoked) > REVOKED_KEPT:
                del self.revoked[next(iter(self.revoked))]

    def drain(self) -> list[Job]:
        """Empty the buffer (shutdown): the jobs to give back."""
        with self.lock:
            jobs = list(self.jobs)
            self.jobs.clear()
        return jobs

    def snapshot(self) -> list[Job]:
        """The buffered jobs, in the order they will leave."""
        with self.lock:
            return list(self.jobs)

    def ids(self) -> set[int]:
        with self.lock:
            return {job.id for job in self.jobs}

    def __len__(self) -> int:
        return len(self.jobs)


__all__ = ["BUDGET", "DEPTH_BUDGET", "MAX_AHEAD", "MAX_DEPTH", "SHORT", "Prefetch"]
