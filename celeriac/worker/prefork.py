"""The prefork pool: child processes forked from the worker, one job each at a time.

The parent sends a child ``(job, hard, soft)`` over a pipe and a result-reader thread
collects the outcomes. That thread is the pool's heart: it also reaps dead children
(reporting their job lost), forks replacements, and kills a child whose job passed its
hard time limit — so it never lets an exception end it.

Children never touch their parent's database connections: the connection pool is
re-created after fork (``celeriac.db.pool``), and a child always leaves with
``os._exit`` so no finalizer can close a socket it shares with the parent. On Linux a
child gets SIGKILL when the worker dies (``PR_SET_PDEATHSIG``), so a killed worker does
not leave tasks running on that another worker is about to run again.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celeriac.message import Job
from celeriac.worker import stacks
from celeriac.worker.executor import Execution, Guard
from celeriac.worker.pool import BasePool, Running, alarm_guard, cold_shutdown_error

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker.pool")

PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """A prefork child process and the job it runs."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    index: int
    job: Job | None = None
    retiring: bool = False  # shrinking: exits after its job, not replaced


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this child when the thread that forked it (the worker) dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)


def _child_main(
    app: Celery,
    conn: Connection,
    hostname: str,
    parent: int,
    max_tasks: int | None,
    max_memory_kib: int | None,
) -> None:
    code = 0
    try:
        _die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        stacks.install()
        signals.worker_process_init.send(sender=None)
        app.on_after_fork.send(sender=app)
        _serve(app, conn, hostname, max_tasks, max_memory_kib)
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    except BaseException:
        logger.exception("prefork child crashed")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never run inherited cleanup: the parent owns those connections


def _serve(
    app: Celery, conn: Connection, hostname: str, max_tasks: int | None, max_kib: int | None
) -> None:
    """Run jobs until told to stop or a max-tasks/max-memory limit says to be replaced."""
    done = 0
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job, _hard, soft = message
        conn.send(Execution(app, job, hostname, guard=_soft_guard(soft)).run_safely())
        done += 1
        if max_tasks and done >= max_tasks:
            logger.info(
                "child %d ran %d task(s) (max-tasks-per-child); replacing it", *(os.getpid(), done)
            )
            return
        if max_kib and _rss_kib() > max_kib:
            logger.info(
                "child %d uses %d KiB > %d KiB (max-memory-per-child); replacing it",
                os.getpid(),
                _rss_kib(),
                max_kib,
            )
            return


def _soft_guard(soft: float | None) -> Guard:
    """A guard enforcing only the soft limit (the parent enforces the hard one)."""

    def guard(_soft: float | None, _hard: float | None) -> AbstractContextManager[None]:
        return alarm_guard(soft, None, False)

    return guard


def _rss_kib() -> int:
    """Peak resident memory of this child (KiB), as billiard measures it: a task that
    spiked and freed its memory still gets its child replaced."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _kill(pid: int | None, signum: int) -> None:
    if pid:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # already gone: the reader reaps it


class PreforkPool(BasePool):
    """Child processes, one job each at a time; the parent enforces hard limits."""

    name = "prefork"

    def start(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self.children: list[Child] = []
        self.stopping = False
        self.counter = 0
        # children are forked only by this thread and the reader: PR_SET_PDEATHSIG ties a
        # child to the thread that forked it; other threads poke the reader instead
        self.poke_r, self.poke_w = os.pipe()
        self._top_up()
        self.reader = threading.Thread(target=self._read, name="celeriac-pool", daemon=True)
        self.reader.start()

    def _spawn(self) -> Child:
        parent_conn, child_conn = self.ctx.Pipe()
        self.counter += 1
        args = (
            self.app,
            child_conn,
            self.hostname,
            os.getpid(),
            self.max_tasks_per_child,
            self.max_memory_per_child,
        )
        process = self.ctx.Process(
            target=_child_main, args=args, name=f"celeriac-child-{self.counter}", daemon=False
        )
        try:
            process.start()
        finally:
            child_conn.close()
        return Child(process, parent_conn, self.counter)

    def _top_up(self) -> bool:
        """Fork children until the pool is full again (unless stopping); True if any."""
        forked = False
        with self.lock:
            while not self.stopping and len(self.children) < self.limit:
                try:
                    self.children.append(self._spawn())
                except OSError as exc:
                    logger.error("cannot start a pool process (%s); retrying", exc)
                    break
                forked = True
        return forked

    def free_slots(self) -> int:
        with self.lock:
            if self.stopping:
                return 0
            return sum(1 for c in self.children if self._idle(c))

    def submit(self, job: Job) -> None:
        with self.lock:
            child = next((c for c in self.children if self._idle(c)), None)
            if child is None:
                raise RuntimeError("no idle pool process")
            hard, soft = self.limits_for(job)
            child.conn.send((job, hard, soft))  # OSError: child just died; caller releases
            now = time.monotonic()
            child.job = job
            assert child.process.pid is not None
            self.running[job.id] = Running(
                job, now, child.process.pid, now + hard if hard else None
            )

    @staticmethod
    def _idle(child: Child) -> bool:
        return child.job is None and not child.retiring and child.process.is_alive()

    def grow(self, n: int = 1) -> None:
        """Add ``n`` child processes (pool_grow, autoscale)."""
        with self.lock:
            if self.stopping:
                return
            self.limit += n
        os.write(self.poke_w, b"+")  # the reader forks the new children

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
                        slot.killed_for = Terminated(signum)
                    _kill(child.process.pid, signum)
                    return True
        return False

    # -- the result reader ------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            with self.lock:
                if self.stopping and not self.children:
                    return
            try:
                self._read_once()
            except Exception:
                logger.exception("prefork pool: unexpected error in the result reader")
                time.sleep(0.1)

    def _read_once(self) -> None:
        with self.lock:
            children = list(self.children)
            deadlines = [
                s.hard_deadline
                for s in self.running.values()
                if s.hard_deadline and s.killed_for is None
            ]
        timeout = 0.5
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        ready = wait(
            [c.conn for c in children] + [c.process.sentinel for c in children] + [self.poke_r],
            timeout,
        )
        if self.poke_r in ready:
            os.read(self.poke_r, 1024)
        answered = False
        for child in children:
            if child.conn in ready:
                answered |= self._receive_all(child)
            elif child.process.sentinel in ready:
                self._reap(child)
        if answered:
            self.on_free()
        self._enforce_hard_limits()
        if self._top_up():
            self.on_free()

    def _receive_all(self, child: Child) -> bool:
        """Take every outcome waiting in the child's pipe (one wake-up for several when
        the parent is busy); True if any. A child that died is reaped once its pipe is
        empty, so outcomes it sent before dying are never reported lost."""
        received = False
        while self._receive(child):
            received = True
            try:
                if not child.conn.poll():
                    break
            except OSError:
                break
        return received

    def _receive(self, child: Child) -> bool:
        try:
            outcome = child.conn.recv()
        except (EOFError, OSError):
            self._reap(child)
            return False
        with self.lock:
            job, child.job = child.job, None
            self.running.pop(outcome.job_id, None)
            if child.retiring:
                self._retire(child)
        if job is not None and job.id != outcome.job_id:  # never expected; be loud
            logger.error("pool process %s answered for the wrong job", child.process.pid)
        self.on_outcome(outcome)
        return True

    def _reap(self, child: Child) -> None:
        child.process.join(timeout=1)
        with self.lock:
            if child not in self.children:
                return
            self.children.remove(child)
            job, child.job = child.job, None
            slot = self.running.pop(job.id, None) if job is not None else None
        child.conn.close()
        if job is not None:
            cause = slot.killed_for if slot is not None else None
            self.on_lost(job, cause or self._exit_error(child, job))
        self._top_up()
        self.on_free()

    @staticmethod
    def _exit_error(child: Child, job: Job) -> WorkerLostError:
        code = child.process.exitcode or 0
        if code < 0:
            name = signal.Signals(-code).name
            how = f"signal {-code} ({name})"
        else:
            how = f"exitcode {code}"
        return WorkerLostError(f"Worker exited prematurely: {how} Job: {job.task_id}.")

    def _enforce_hard_limits(self) -> None:
        now = time.monotonic()
        with self.lock:
            for slot in self.running.values():
                if slot.hard_deadline and slot.killed_for is None and now >= slot.hard_deadline:
                    hard = self.limits_for(slot.job)[0]
                    logger.error(
                        "Hard time limit (%ss) exceeded for %s[%s]; killing pid %s",
                        hard,
                        slot.job.task_name,
                        slot.job.task_id,
                        slot.pid,
                    )
                    slot.killed_for = TimeLimitExceeded(hard)
                    _kill(slot.pid, signal.SIGKILL)

    # -- stopping -----------------------------------------------------------------------
    def stop(self, cold: bool, abort: threading.Event | None = None) -> list[Job]:
        if not cold and not self.wait_idle(abort=abort):
            return []  # a cold shutdown was requested meanwhile: it calls stop(cold=True)
        with self.lock:
            self.stopping = True
            for child in self.children:
                if cold:
                    slot = self.running.get(child.job.id) if child.job is not None else None
                    if slot is not None and slot.killed_for is None:
                        slot.killed_for = cold_shutdown_error(slot.job)
                    _kill(child.process.pid, signal.SIGKILL)
                else:
                    try:
                        child.conn.send(None)
                    except OSError:
                        pass
        # the reader reports what the children answered or lost, reaps them, then ends
        self.reader.join(timeout=30)
        if self.reader.is_alive():
            logger.error("prefork pool: children did not exit; killing them")
            with self.lock:
                for child in self.children:
                    _kill(child.process.pid, signal.SIGKILL)
            self.reader.join(timeout=10)
        os.close(self.poke_r)
        os.close(self.poke_w)
        return []


__all__ = ["Child", "PreforkPool"]
