"""Execution pools: prefork (default, in ``prefork.py``), threads and solo.

Every pool runs jobs through the executor and reports each Outcome to ``on_outcome``;
a job whose process died, passed its hard time limit or was cut off by a cold shutdown
is reported to ``on_lost``. What each pool enforces (tested in
``tests/e2e/test_worker_limits.py``):

| pool | soft time limit | hard time limit | a task blocked in C code (e.g. ``time.sleep``) |
|---|---|---|---|
| prefork | SIGALRM in the child raises SoftTimeLimitExceeded in the task | the parent SIGKILLs the child and forks a replacement; FAILURE TimeLimitExceeded, on_failure and errbacks run (in the parent) | stopped: the process is killed |
| threads | SoftTimeLimitExceeded raised asynchronously in the task's thread | TimeLimitExceeded raised asynchronously → FAILURE; if the thread is still busy 1 s later the job is recorded FAILURE TimeLimitExceeded and a new thread takes the slot | recorded and the slot replaced at limit + 1 s; the stuck thread runs on until the call returns, its result is discarded |
| solo | SIGALRM in the main thread raises SoftTimeLimitExceeded | SIGALRM raises TimeLimitExceeded in the task → FAILURE | ``time.sleep`` and other calls that return on EINTR are stopped; a C loop that never returns to Python is not |

Asynchronous exceptions (threads) and SIGALRM handlers (solo, prefork soft limit) run
between Python bytecodes only, and a task can catch them: catching
SoftTimeLimitExceeded to clean up is the intended use; swallowing TimeLimitExceeded in
threads/solo defeats the hard limit (prefork's cannot be caught).

Cold shutdown: prefork kills its children, threads abandons its busy threads, solo
raises a BaseException out of the running task from the signal handler; in every pool
the cut-off jobs are reported to ``on_lost``.

Solo is the fastest way to drain short tasks: one solo worker per core claims, runs and
records its own jobs, with no parent process and no pipe in a job's path (the claim loop
runs a claim's buffered jobs back to back: ``Consumer._run_buffer``). Two solo workers
drained no-op tasks ~1.7 times as fast as one prefork worker ``-c 2`` (bench/README.md); what
they give up is in the table above (hard limits) and five database sessions per worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue as queue_mod
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celeriac.message import Job
from celeriac.worker.executor import Execution, Outcome

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)

OnOutcome = Callable[[Outcome], None]
OnLost = Callable[[Job, BaseException], None]


def cold_shutdown_error(job: Job) -> WorkerLostError:
    """What a job cut off by a cold shutdown ends with (unless it is requeued)."""
    return WorkerLostError(f"Worker exited prematurely: cold shutdown. Job: {job.task_id}.")


@dataclass
class Running:
    """A job in a pool slot."""

    job: Job
    started: float
    pid: int
    hard_deadline: float | None = None
    killed_for: BaseException | None = None
    queued: bool = False  # prefork: waiting in its child behind the job it runs
    cost: float = 0.0  # prefork: its expected runtime when it was queued (Prefetch.cost)
    hard: float | None = None  # prefork: its hard time limit as it was queued


class BasePool:
    """What the consumer needs from a pool."""

    name = "base"
    marks_started = False  # True: the pool reports when a job starts (``on_started``)
    inline = False  # True: ``submit`` runs the job in the caller's thread before returning

    def __init__(
        self,
        app: Celery,
        concurrency: int,
        hostname: str,
        on_outcome: OnOutcome,
        on_lost: OnLost,
        on_free: Callable[[], None],
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        depth: Callable[[], int] = lambda: 1,
        cost: Callable[[str], float] = lambda task_name: 0.0,
        on_started: Callable[[Job], None] = lambda job: None,
        on_release: Callable[[Job], None] = lambda job: None,
        on_outcomes: Callable[[list[Outcome]], None] | None = None,
    ) -> None:
        self.app = app
        self.limit = concurrency
        self.hostname = hostname
        self.on_outcome = on_outcome
        # several outcomes at once (the prefork reader's), by default one at a time
        self.on_outcomes = on_outcomes or self._one_by_one
        self.on_lost = on_lost
        self.on_free = on_free
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self.depth = depth  # jobs a process may hold (prefork), see worker/prefetch.py
        self.cost = cost  # a task's expected runtime (prefork), see worker/prefetch.py
        self.on_started = on_started  # a job left the queue it waited in, and runs
        self.on_release = on_release  # a job that never started goes back untouched
        self.lock = threading.RLock()
        self.running: dict[int, Running] = {}

    def start(self) -> None: ...

    def _one_by_one(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.on_outcome(outcome)

    def accepts(self, job: Job) -> bool:
        """Whether ``job`` can be submitted now (prefork: it may not fit in a busy
        process's queue)."""
        return True

    def free_slots(self) -> int:
        with self.lock:
            return self.limit - len(self.running)

    def room(self) -> int:
        """How many jobs the pool takes now (free slots, and queue room in prefork)."""
        return self.free_slots()

    def submit(self, job: Job) -> None:
        """Start ``job``; raises when it could not be handed over (the caller releases it)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Hand over what ``submit`` queued (prefork sends each child one message)."""

    def active(self) -> list[Running]:
        with self.lock:
            return list(self.running.values())

    def terminate(self, task_id: str, signum: int) -> bool:
        """Stop the running task ``task_id`` (only that task). False if not running here."""
        return False

    def revoke(self, task_ids: list[str]) -> None:
        """Refuse these tasks if they were handed over but have not started (prefork's
        queued jobs); the other pools start every job they are given at once."""

    def interrupt(self) -> None:
        """Called from the main thread's signal handler on a cold shutdown."""

    def wait_idle(self, timeout: float | None = None, abort: threading.Event | None = None) -> bool:
        """Wait until nothing runs; False on timeout or when ``abort`` is set first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                if not self.running:
                    return True
            if (abort is not None and abort.is_set()) or (
                deadline is not None and time.monotonic() > deadline
            ):
                return False
            (abort or threading.Event()).wait(0.05)

    def stop(self, cold: bool, abort: threading.Event | None = None) -> list[Job]:
        """Stop. Warm: wait for running jobs (returns early, empty, if ``abort`` is set).
        Cold: return the jobs that were cut off and not reported to ``on_lost`` yet."""
        return []

    def limits_for(self, job: Job) -> tuple[float | None, float | None]:
        """Hard and soft limits: message, then task, then worker options."""
        hard, soft = job.time_limits()
        task = self.app.tasks.get(job.task_name)
        if hard is None:
            hard = task.time_limit if task is not None else None
        if soft is None:
            soft = task.soft_time_limit if task is not None else None
        return (
            hard if hard is not None else self.time_limit,
            soft if soft is not None else self.soft_time_limit,
        )


# -- solo ------------------------------------------------------------------------------
@contextmanager
def alarm_guard(soft: float | None, hard: float | None, enforce_hard: bool) -> Iterator[None]:
    """SIGALRM-based limits for the current (main) thread of a process."""
    stages: list[tuple[float, type[BaseException]]] = []
    if soft:
        stages.append((float(soft), SoftTimeLimitExceeded))
    if hard and enforce_hard:
        stages.append((float(hard), TimeLimitExceeded))
    if not stages:
        yield
        return
    stages.sort(key=lambda stage: stage[0])
    began = time.monotonic()
    pending = list(stages)

    def fire(signum: int, frame: Any) -> None:
        limit, exc_type = pending.pop(0)
        if pending:
            signal.setitimer(
                signal.ITIMER_REAL, max(0.001, pending[0][0] - (time.monotonic() - began))
            )
        raise exc_type(limit)

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, stages[0][0])
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ColdShutdown(BaseException):
    """Raised out of a solo task by the cold-shutdown signal handler (never recorded)."""


class SoloPool(BasePool):
    """Runs each job inline in the worker's consumer thread (concurrency 1)."""

    name = "solo"
    inline = True

    def submit(self, job: Job) -> None:
        try:
            with self.lock:
                self.running[job.id] = Running(job, time.monotonic(), os.getpid())
            hard, soft = self.limits_for(job)
            guard = None
            if hard or soft:
                guard = lambda s, h: alarm_guard(soft, hard, True)  # noqa: E731
            outcome: Outcome | None = Execution(
                self.app, job, self.hostname, guard=guard
            ).run_safely()
        except ColdShutdown:
            outcome = None
        finally:
            with self.lock:
                self.running.pop(job.id, None)
        if outcome is None:
            self.on_lost(job, cold_shutdown_error(job))
        else:
            self.on_outcome(outcome)
        self.on_free()

    def interrupt(self) -> None:
        """Cut the running task off: the handler runs in the main thread, which runs it."""
        if threading.current_thread() is threading.main_thread() and self.running:
            raise ColdShutdown()


# -- threads -------------------------------------------------------------------------------
def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in the thread asynchronously (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class ThreadPool(BasePool):
    """Runs jobs on threads; limits are asynchronous exceptions (see the module table)."""

    name = "threads"

    def start(self) -> None:
        self.jobs: queue_mod.Queue[Job | None] = queue_mod.Queue()
        self.abandoned: set[int] = set()
        self.soft: dict[int, float | None] = {}
        self.stopping = False
        for _ in range(self.limit):
            self._spawn()
        self.watchdog = threading.Thread(target=self._watch, name="celeriac-limits", daemon=True)
        self.watchdog.start()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._loop, name="celeriac-task", daemon=True)
        thread.start()

    def submit(self, job: Job) -> None:
        with self.lock:
            self.running[job.id] = Running(job, time.monotonic(), 0)
        self.jobs.put(job)

    def _loop(self) -> None:
        ident = threading.get_ident()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            result: Outcome | BaseException
            try:
                self._begin(job, ident)
                result = Execution(self.app, job, self.hostname).run_safely()
            except BaseException as exc:  # a limit landing outside the task body
                result = exc
            _raise_in_thread(ident, None)  # a limit raised too late must not hit the loop
            if not self._end(job, ident, result):
                return

    def _begin(self, job: Job, ident: int) -> None:
        with self.lock:
            slot = self.running.get(job.id)
            if slot is not None:
                slot.pid = ident
                hard, soft = self.limits_for(job)
                slot.started = time.monotonic()
                slot.hard_deadline = (slot.started + hard) if hard else None
                self.soft[job.id] = (slot.started + soft) if soft else None

    def _end(self, job: Job, ident: int, result: Outcome | BaseException) -> bool:
        """Report the job; False when this thread was abandoned (its job already recorded)."""
        with self.lock:
            self.soft.pop(job.id, None)
            if ident in self.abandoned:
                self.abandoned.discard(ident)
                return False
            slot = self.running.pop(job.id, None)
        if isinstance(result, Outcome):
            self.on_outcome(result)
        else:
            cause = slot.killed_for if slot is not None and slot.killed_for else result
            self.on_lost(job, cause)
        self.on_free()
        return True

    def _watch(self) -> None:
        while not self.stopping:
            time.sleep(0.05)
            now = time.monotonic()
            with self.lock:
                for job_id, slot in list(self.running.items()):
                    soft = self.soft.get(job_id)
                    if slot.pid and soft is not None and now >= soft:
                        self.soft[job_id] = None
                        _raise_in_thread(slot.pid, SoftTimeLimitExceeded)
                    if slot.pid and slot.hard_deadline is not None and now >= slot.hard_deadline:
                        self._hard_limit(slot, now)

    def _hard_limit(self, slot: Running, now: float) -> None:
        hard = self.limits_for(slot.job)[0]
        if slot.killed_for is None:
            slot.killed_for = TimeLimitExceeded(hard)
            _raise_in_thread(slot.pid, TimeLimitExceeded)
            slot.hard_deadline = now + 1.0  # grace before the slot is replaced
            return
        logger.error(
            "Hard time limit (%ss) exceeded for %s[%s]; its thread is stuck, replacing it",
            hard,
            slot.job.task_name,
            slot.job.task_id,
        )
        self.running.pop(slot.job.id, None)
        self.abandoned.add(slot.pid)
        self._spawn()
        self.on_lost(slot.job, TimeLimitExceeded(hard))
        self.on_free()

    def stop(self, cold: bool, abort: threading.Event | None = None) -> list[Job]:
        if cold:
            with self.lock:
                self.stopping = True
                cut = [slot.job for slot in self.running.values()]
                self.abandoned.update(slot.pid for slot in self.running.values() if slot.pid)
                self.running.clear()
            return cut
        if not self.wait_idle(abort=abort):
            return []
        self.stopping = True
        for _ in range(self.limit):
            self.jobs.put(None)
        return []


def _pools() -> dict[str, type[BasePool]]:
    from celeriac.worker.prefork import PreforkPool

    return {
        "prefork": PreforkPool,
        "processes": PreforkPool,
        "threads": ThreadPool,
        "solo": SoloPool,
    }


POOL_NAMES = ("prefork", "processes", "threads", "solo")


def pool_class(name: str) -> type[BasePool]:
    """The pool class for a ``-P`` name."""
    return _pools()[name]


__all__ = [
    "POOL_NAMES",
    "BasePool",
    "ColdShutdown",
    "Running",
    "SoloPool",
    "ThreadPool",
    "alarm_guard",
    "cold_shutdown_error",
    "pool_class",
]
