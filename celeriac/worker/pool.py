"""Execution pools: prefork (default), threads and solo.

Every pool runs jobs through the executor and reports each Outcome to ``on_outcome``;
a job whose process died or passed its hard time limit is reported to ``on_lost``.
What each pool enforces:

| pool | soft time limit | hard time limit | a task stuck in C code |
|---|---|---|---|
| prefork | SIGALRM in the child raises SoftTimeLimitExceeded | the parent kills the child (SIGKILL) and starts another; FAILURE TimeLimitExceeded | stopped (process killed) |
| threads | SoftTimeLimitExceeded raised asynchronously in the thread | TimeLimitExceeded raised asynchronously; if the thread is still busy 1 s later the job is recorded as TimeLimitExceeded and a new thread takes the slot | recorded and slot replaced; the stuck thread lingers until it returns |
| solo | SIGALRM in the main thread | SIGALRM raises TimeLimitExceeded in the task | not stopped (Python cannot interrupt C code in-thread) |

Asynchronous exceptions and SIGALRM are delivered between Python bytecodes only.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import multiprocessing
import os
import queue as queue_mod
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celeriac.message import Job
from celeriac.worker.executor import Execution, Guard, Outcome

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)

OnOutcome = Callable[[Outcome], None]
OnLost = Callable[[Job, BaseException], None]


@dataclass
class Running:
    """A job in a pool slot."""

    job: Job
    started: float
    pid: int
    hard_deadline: float | None = None
    killed_for: BaseException | None = None


class BasePool:
    """What the consumer needs from a pool."""

    name = "base"

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
    ) -> None:
        self.app = app
        self.limit = concurrency
        self.hostname = hostname
        self.on_outcome = on_outcome
        self.on_lost = on_lost
        self.on_free = on_free
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self.lock = threading.RLock()
        self.running: dict[int, Running] = {}

    def start(self) -> None: ...

    def free_slots(self) -> int:
        with self.lock:
            return self.limit - len(self.running)

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def active(self) -> list[Running]:
        with self.lock:
            return list(self.running.values())

    def terminate(self, task_id: str, signum: int) -> bool:
        """Stop the running task ``task_id`` (only that task). False if not running here."""
        return False

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                if not self.running:
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def stop(self, cold: bool) -> list[Job]:
        """Stop; a cold stop returns the jobs that were cut off."""
        return []

    def limits_for(self, job: Job) -> tuple[float | None, float | None]:
        """Hard and soft limits: message, then task, then worker options."""
        hard, soft = (job.headers.get("timelimit") or [None, None])[:2]
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
    began = time.monotonic()
    pending = list(stages)

    def fire(signum: int, frame: Any) -> None:
        _, exc_type = pending.pop(0)
        if pending:
            signal.setitimer(
                signal.ITIMER_REAL, max(0.001, pending[0][0] - (time.monotonic() - began))
            )
        raise exc_type(stages[0][0] if exc_type is SoftTimeLimitExceeded else hard)

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, stages[0][0])
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class SoloPool(BasePool):
    """Runs each job inline in the worker's consumer thread (concurrency 1)."""

    name = "solo"

    def submit(self, job: Job) -> None:
        with self.lock:
            self.running[job.id] = Running(job, time.monotonic(), os.getpid())
        try:
            hard, soft = self.limits_for(job)
            outcome = Execution(
                self.app, job, self.hostname, guard=lambda s, h: alarm_guard(soft, hard, True)
            ).run()
        finally:
            with self.lock:
                self.running.pop(job.id, None)
        self.on_outcome(outcome)
        self.on_free()


# -- threads -------------------------------------------------------------------------------
def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


class ThreadPool(BasePool):
    """Runs jobs on threads; limits are asynchronous exceptions (see the module table)."""

    name = "threads"

    def start(self) -> None:
        self.jobs: queue_mod.Queue[Job | None] = queue_mod.Queue()
        self.threads: dict[int, threading.Thread] = {}
        self.abandoned: set[int] = set()
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
            self.running[job.id] = Running(job, time.monotonic(), os.getpid())
        self.jobs.put(job)

    def _loop(self) -> None:
        ident = threading.get_ident()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                slot = self.running.get(job.id)
                if slot is not None:
                    slot.pid = ident
                    hard, soft = self.limits_for(job)
                    slot.hard_deadline = (slot.started + hard) if hard else None
                    self._soft[job.id] = (slot.started + soft) if soft else None
            outcome = Execution(self.app, job, self.hostname).run()
            with self.lock:
                self._soft.pop(job.id, None)
                if ident in self.abandoned:  # the job was already recorded as timed out
                    self.abandoned.discard(ident)
                    return
                self.running.pop(job.id, None)
            self.on_outcome(outcome)
            self.on_free()

    _soft: dict[int, float | None] = {}

    def _watch(self) -> None:
        self._soft = {}
        while not self.stopping:
            time.sleep(0.05)
            now = time.monotonic()
            with self.lock:
                for job_id, slot in list(self.running.items()):
                    soft = self._soft.get(job_id)
                    if soft is not None and now >= soft:
                        self._soft[job_id] = None
                        _raise_in_thread(slot.pid, SoftTimeLimitExceeded)
                    if slot.hard_deadline is not None and now >= slot.hard_deadline:
                        self._hard_limit(slot, now)

    def _hard_limit(self, slot: Running, now: float) -> None:
        if slot.killed_for is None:
            slot.killed_for = TimeLimitExceeded(slot.hard_deadline and now - slot.started)
            _raise_in_thread(slot.pid, TimeLimitExceeded)
            slot.hard_deadline = now + 1.0  # grace before the slot is replaced
            return
        # still stuck: record the failure, hand the slot to a new thread
        self.running.pop(slot.job.id, None)
        self.abandoned.add(slot.pid)
        self._spawn()
        self.on_lost(slot.job, TimeLimitExceeded(self.limits_for(slot.job)[0]))
        self.on_free()

    def stop(self, cold: bool) -> list[Job]:
        self.stopping = True
        if cold:
            with self.lock:
                cut = [slot.job for slot in self.running.values()]
                self.running.clear()
            return cut
        self.wait_idle()
        for _ in range(self.limit):
            self.jobs.put(None)
        return []


# -- prefork -------------------------------------------------------------------------------------
@dataclass
class Child:
    """A prefork child process and the job it runs."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    index: int
    job: Job | None = None
    retiring: bool = False  # shrinking: exits after its job, not replaced


def _child_main(
    app: Celery,
    conn: Connection,
    hostname: str,
    index: int,
    max_tasks: int | None,
    max_memory_kib: int | None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = 0
    try:
        signals.worker_process_init.send(sender=None)
        app.on_after_fork.send(sender=app)
        done = 0
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message is None:
                break
            job, _hard, soft = message
            outcome = Execution(app, job, hostname, guard=_soft_guard(soft)).run()
            conn.send(outcome)
            done += 1
            if max_tasks and done >= max_tasks:
                break
            if max_memory_kib and _rss_kib() > max_memory_kib:
                logger.info(
                    "child %d over max memory (%d KiB); replacing it", os.getpid(), max_memory_kib
                )
                break
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    except BaseException:
        logger.exception("prefork child crashed")
        code = 1
    finally:
        os._exit(code)  # never run inherited cleanup: the parent owns those connections


def _soft_guard(soft: float | None) -> Guard:
    """A guard enforcing only the soft limit (the parent enforces the hard one)."""

    def guard(_soft: float | None, _hard: float | None) -> AbstractContextManager[None]:
        return alarm_guard(soft, None, False)

    return guard


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class PreforkPool(BasePool):
    """Child processes, one job each at a time; the parent enforces hard limits."""

    name = "prefork"

    def start(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self.children: list[Child] = []
        self.stopping = False
        self.counter = 0
        for _ in range(self.limit):
            self.children.append(self._spawn())
        self.reader = threading.Thread(target=self._read, name="celeriac-pool", daemon=True)
        self.reader.start()

    def _spawn(self) -> Child:
        parent_conn, child_conn = self.ctx.Pipe()
        self.counter += 1
        process = self.ctx.Process(
            target=_child_main,
            args=(
                self.app,
                child_conn,
                self.hostname,
                self.counter,
                self.max_tasks_per_child,
                self.max_memory_per_child,
            ),
            name=f"celeriac-child-{self.counter}",
            daemon=False,
        )
        process.start()
        child_conn.close()
        return Child(process, parent_conn, self.counter)

    def free_slots(self) -> int:
        with self.lock:
            return sum(1 for c in self.children if self._idle(c)) if not self.stopping else 0

    def submit(self, job: Job) -> None:
        with self.lock:
            child = next(c for c in self.children if self._idle(c))
            hard, soft = self.limits_for(job)
            now = time.monotonic()
            child.job = job
            assert child.process.pid is not None
            self.running[job.id] = Running(
                job, now, child.process.pid, now + hard if hard else None
            )
            child.conn.send((job, hard, soft))

    @staticmethod
    def _idle(child: Child) -> bool:
        return child.job is None and not child.retiring and child.process.is_alive()

    def grow(self, n: int = 1) -> None:
        """Add ``n`` child processes (pool_grow, autoscale)."""
        with self.lock:
            if self.stopping:
                return
            self.children += [self._spawn() for _ in range(n)]
            self.limit += n
        self.on_free()

    def shrink(self, n: int = 1) -> None:
        """Retire ``n`` children (idle ones first; busy ones after their job); keep one."""
        with self.lock:
            serving = [c for c in self.children if not c.retiring]
            n = max(0, min(n, len(serving) - 1))
            for child in sorted(serving, key=lambda c: c.job is not None)[:n]:
                child.retiring = True
                if child.job is None:
                    self._retire(child)
            self.limit -= n

    def _retire(self, child: Child) -> None:
        try:
            child.conn.send(None)
        except OSError:
            pass

    def terminate(self, task_id: str, signum: int) -> bool:
        """Signal the child running ``task_id``. Under the lock, ``child.job`` is that job
        until its outcome was received, and a child gets its next job only after that: the
        signal can reach that job or an idle child, never a later job."""
        with self.lock:
            for child in self.children:
                if child.job is not None and child.job.task_id == task_id:
                    slot = self.running.get(child.job.id)
                    if slot is not None:
                        from celeriac.exceptions import Terminated

                        slot.killed_for = Terminated(signum)
                    assert child.process.pid is not None
                    os.kill(child.process.pid, signum)
                    return True
        return False

    def _read(self) -> None:
        while True:
            with self.lock:
                children = list(self.children)
                deadline = min(
                    (
                        s.hard_deadline
                        for s in self.running.values()
                        if s.hard_deadline and s.killed_for is None
                    ),
                    default=None,
                )
            if self.stopping and not any(c.process.is_alive() for c in children):
                return
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            ready = wait(
                [c.conn for c in children] + [c.process.sentinel for c in children], timeout
            )
            for child in children:
                if child.conn in ready:
                    self._receive(child)
                elif child.process.sentinel in ready:
                    self._reap(child)
            self._enforce_hard_limits()

    def _receive(self, child: Child) -> None:
        try:
            outcome = child.conn.recv()
        except (EOFError, OSError):
            self._reap(child)
            return
        with self.lock:
            child.job = None
            self.running.pop(outcome.job_id, None)
            if child.retiring:
                self._retire(child)
        self.on_outcome(outcome)
        self.on_free()

    def _reap(self, child: Child) -> None:
        child.process.join(timeout=1)
        with self.lock:
            if child not in self.children:
                return
            self.children.remove(child)
            job, child.job = child.job, None
            slot = self.running.pop(job.id, None) if job is not None else None
            if not self.stopping and not child.retiring:
                self.children.append(self._spawn())
        child.conn.close()
        if job is not None:
            cause = slot.killed_for if slot is not None and slot.killed_for is not None else None
            if cause is None or isinstance(cause, WorkerLostError):
                code = child.process.exitcode or 0
                name = signal.Signals(-code).name if code < 0 else f"exitcode {code}"
                cause = WorkerLostError(
                    f"Worker exited prematurely: signal {-code} ({name}) Job: {job.task_id}."
                    if code < 0
                    else f"Worker exited prematurely: {name} Job: {job.task_id}."
                )
            self.on_lost(job, cause)
        self.on_free()

    def _enforce_hard_limits(self) -> None:
        now = time.monotonic()
        with self.lock:
            for child in self.children:
                slot = self.running.get(child.job.id) if child.job is not None else None
                if (
                    slot
                    and slot.hard_deadline
                    and slot.killed_for is None
                    and now >= slot.hard_deadline
                ):
                    hard = self.limits_for(slot.job)[0]
                    logger.error(
                        "Hard time limit (%ss) exceeded for %s[%s]; killing pid %s",
                        hard,
                        slot.job.task_name,
                        slot.job.task_id,
                        slot.pid,
                    )
                    slot.killed_for = TimeLimitExceeded(hard)
                    os.kill(slot.pid, signal.SIGKILL)

    def stop(self, cold: bool) -> list[Job]:
        if not cold:
            self.wait_idle()
        with self.lock:
            self.stopping = True
            cut = [c.job for c in self.children if c.job is not None]
            for child in self.children:
                child.job = None
            self.running.clear()
            for child in self.children:
                if cold:
                    if child.process.pid:
                        os.kill(child.process.pid, signal.SIGKILL)
                else:
                    try:
                        child.conn.send(None)
                    except OSError:
                        pass
        for child in list(self.children):
            child.process.join(timeout=5)
        return cut if cold else []


POOLS: dict[str, type[BasePool]] = {
    "prefork": PreforkPool,
    "processes": PreforkPool,
    "threads": ThreadPool,
    "solo": SoloPool,
}

__all__ = ["POOLS", "BasePool", "PreforkPool", "Running", "SoloPool", "ThreadPool", "alarm_guard"]
