"""The prefork pool: child processes forked from the worker, one job each at a time.

The parent sends a child a list of ``(job, hard, soft)`` over a pipe and a result-reader
thread collects the outcomes, one message per job, in order. That thread is the pool's
heart: it also reaps dead children (reporting their job lost), forks replacements, and
kills a child whose job passed its hard time limit — so it never lets an exception end it.

While jobs are very short a child holds up to 5 ms of them (at most 128) queued behind
the one it runs (``depth``, from worker/prefetch.py): one pipe message carries several
jobs, and the child starts the next without waiting for the parent — a drain of no-op
jobs spent most of the worker's CPU on one pipe round trip per job. Each job is weighed
by its own task's recent runtime (``cost``), so a task not seen yet, or a long one, only
goes to an idle child. Because outcomes still come back one per job, the parent always
knows which job a child is running (the first it has not answered): that job alone has a
hard deadline, counts as started (the ``started`` mark of a prefetched job is sent when
it gets there, unless it also ended by the time the reader looked), is the one a
terminate or a dead child concerns. The jobs queued behind it never started: a dead
child's are put back in the queue untouched, and a terminate aimed at one kills the
child when the job reaches the front (its queue is a few milliseconds of short jobs). A
revoke reaches a queued job too: the parent sends the revoked ids to a child that holds
one, and a child with jobs queued looks at its pipe (one ``poll`` call, at most every
``LOOK_EVERY``) between jobs, so the job is refused as REVOKED, as a job still in the
worker's buffer is.
While children hold such queues, the reader lets their outcomes gather in the pipes for
a millisecond (``GATHER``) and takes them in one wake-up, one ``read`` per child
(``Frames``), handed on together; it only ever learns a queued job started that much
late.

Children never touch their parent's database connections: the connection pool is
re-created after fork (``celeriac.db.pool``), and a child always leaves with
``os._exit`` so no finalizer can close a socket it shares with the parent. On Linux a
child gets SIGKILL when the worker dies (``PR_SET_PDEATHSIG``), so a killed worker does
not leave tasks running on that another worker is about to run again.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import os
import pickle
import resource
import select
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celeriac.message import Job
from celeriac.worker import stacks
from celeriac.worker.executor import Execution, Guard, Outcome
from celeriac.worker.pool import BasePool, Running, alarm_guard, cold_shutdown_error
from celeriac.worker.prefetch import DEPTH_BUDGET, REVOKED_KEPT

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker.pool")

PR_SET_PDEATHSIG = 1
# how long the result reader lets outcomes gather while children hold queued jobs
GATHER = 0.001
# a child's outcomes: each a pickle behind its length; the reader takes them in chunks
FRAME = struct.Struct("!Q")
CHUNK = 1 << 16
# how often a child with jobs queued looks at its pipe for a revoke or more jobs
LOOK_EVERY = 0.001


@dataclass
class Unreadable:
    """In place of an outcome the parent could not unpickle: its job is reported lost."""

    reason: str


class Frames:
    """The outcomes a child wrote to its pipe, read a chunk at a time.

    ``Connection.recv_bytes`` made two ``read`` calls per outcome (its length, then its
    body) and the reader one ``poll`` more to ask whether another waited; a drain's
    children answer several jobs between two wake-ups of the reader, so one ``read``
    now takes them all. An outcome cut off by its child's death is never completed and
    never reported: its job is the one the reaping reports lost."""

    def __init__(self, fd: int, more_waiting: Callable[[], bool]) -> None:
        self.fd = fd
        self.more_waiting = more_waiting  # a ``poll(0)`` of the pipe
        self.buffer = bytearray()

    def read(self) -> tuple[list[Any], bool]:
        """The complete outcomes the pipe holds now (an ``Unreadable`` for one that
        cannot be unpickled), and whether the pipe has ended."""
        ended = False
        while True:
            try:
                data = os.read(self.fd, CHUNK)
            except OSError:  # (ECONNRESET: the child died)
                data = b""
            if not data:
                ended = True
                break
            self.buffer += data
            if len(data) < CHUNK or not self.more_waiting():
                break
        return self._parse(), ended

    def _parse(self) -> list[Any]:
        items: list[Any] = []
        buffer, at = self.buffer, 0
        with memoryview(buffer) as view:
            while len(buffer) - at >= FRAME.size:
                (size,) = FRAME.unpack_from(buffer, at)
                end = at + FRAME.size + size
                if end > len(buffer):
                    break
                try:
                    items.append(pickle.loads(view[at + FRAME.size : end]))
                except Exception as exc:  # one bad outcome: the next frames are intact
                    items.append(Unreadable(f"its outcome could not be read: {exc!r}"))
                at = end
        del buffer[:at]
        return items


@dataclass(eq=False)  # the same child only when it is the same object
class Child:
    """A prefork child process, the job it runs and the jobs queued behind it."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    index: int
    jobs: deque[Job] = field(default_factory=deque)  # the first one runs
    outbox: list[tuple[Job, float | None, float | None]] = field(default_factory=list)
    assigned: int = 0  # jobs given to it in its life (max-tasks-per-child)
    load: float = 0.0  # expected seconds of the jobs it holds (their Running.cost)
    retiring: bool = False  # shrinking: exits after its jobs, not replaced
    # its pipe alone, to ask whether another outcome waits (``Connection.poll`` builds a
    # selector per call: 14 % of the parent's GIL time in a drain of no-op jobs)
    pipe: select.poll = field(default_factory=select.poll)
    fd: int = field(init=False)  # the pipe's file descriptor (kept after it is closed)
    answers: Frames = field(init=False)  # the outcomes it sent, read in chunks

    def __post_init__(self) -> None:
        self.fd = self.conn.fileno()
        self.pipe.register(self.fd, select.POLLIN)
        self.answers = Frames(self.fd, self.more_waiting)

    @property
    def job(self) -> Job | None:
        """The job it runs (or is about to run)."""
        return self.jobs[0] if self.jobs else None

    def more_waiting(self) -> bool:
        """Something (an outcome, or the end of the pipe) can be read without blocking."""
        return bool(self.pipe.poll(0))


class _Watch:
    """One ``poll`` over every child's pipe and sentinel and the poke pipe, kept between
    rounds of the reader and rebuilt only when the children change (``wait()`` built and
    filled a selector every round)."""

    def __init__(self, poke: int) -> None:
        self.poke = poke
        self.children: list[Child] = []
        self.poller = select.poll()

    def ready(self, children: list[Child], timeout: float) -> tuple[set[int], bool]:
        """The fds ready within ``timeout`` seconds, and whether the poke pipe is."""
        if children != self.children:
            self._rebuild(children)
        events = self.poller.poll(max(0, int(timeout * 1000 + 0.999)))
        ready = {fd for fd, _ in events}
        return ready, self.poke in ready

    def _rebuild(self, children: list[Child]) -> None:
        self.poller = select.poll()
        self.poller.register(self.poke, select.POLLIN)
        for child in children:
            self.poller.register(child.fd, select.POLLIN)
            self.poller.register(child.process.sentinel, select.POLLIN)
        self.children = list(children)


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
    """Run jobs until told to stop or a max-tasks/max-memory limit says to be replaced.

    Limits are checked once the jobs received so far are done: leaving with queued jobs
    would have the parent take the next one for lost (the parent never gives a child
    more jobs than its max-tasks allow)."""
    done = 0
    queued: deque[tuple[Job, float | None, float | None]] = deque()
    revoked: dict[str, None] = {}  # the most recent last
    inbox = select.poll()
    inbox.register(conn.fileno(), select.POLLIN)
    look_at = 0.0  # with jobs queued, when to look at the pipe next
    while True:
        # with jobs queued, read only what is already there (a revoke for one of them),
        # but at most every LOOK_EVERY seconds, not with a system call before each short job
        if queued and (now := time.monotonic()) >= look_at:
            look_at = now + LOOK_EVERY
            looked = bool(inbox.poll(0))
        else:
            looked = False
        if not queued or looked:
            if not queued and _replace(done, max_tasks, max_kib):
                return
            try:
                message = _recv(conn)
            except EOFError:
                return
            if message is None:  # (sent only to a child with nothing queued)
                return
            if isinstance(message, tuple):  # ("revoke", task ids)
                revoked.update(dict.fromkeys(message[1]))
                while len(revoked) > REVOKED_KEPT:
                    del revoked[next(iter(revoked))]
            else:
                queued.extend(message)
            continue
        job, _hard, soft = queued.popleft()
        if job.task_id in revoked:
            job = dataclasses.replace(job, revoked=True)  # the executor refuses it
        _answer(conn, Execution(app, job, hostname, guard=_soft_guard(soft)).run_safely())
        done += 1


def _replace(done: int, max_tasks: int | None, max_kib: int | None) -> bool:
    """Has this child reached max-tasks-per-child or max-memory-per-child?"""
    if max_tasks and done >= max_tasks:
        logger.info(
            "child %d ran %d task(s) (max-tasks-per-child); replacing it", *(os.getpid(), done)
        )
        return True
    if max_kib and done and _rss_kib() > max_kib:
        logger.info(
            "child %d uses %d KiB > %d KiB (max-memory-per-child); replacing it",
            os.getpid(),
            _rss_kib(),
            max_kib,
        )
        return True
    return False


def _send(conn: Connection, obj: Any) -> None:
    """Send a child jobs, a revoke or the sign to leave (outcomes go back with
    ``_answer``). Plain pickle: ``Connection.send``'s ForkingPickler looks every pickled
    object's type up in a Python-level ChainMap (its reducers for sockets and file
    descriptors, which jobs and outcomes never hold): 9.3 against 6.8 us per outcome."""
    conn.send_bytes(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection) -> Any:
    """What ``_send`` sent."""
    return pickle.loads(conn.recv_bytes())


def _answer(conn: Connection, outcome: Any) -> None:
    """Send an outcome to the parent, one frame in one ``write`` (see ``Frames``)."""
    body = pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
    with memoryview(FRAME.pack(len(body)) + body) as rest:
        while rest:
            rest = rest[os.write(conn.fileno(), rest) :]


def _soft_guard(soft: float | None) -> Guard:
    """A guard enforcing only the soft limit (the parent enforces the hard one)."""
    if not soft:
        return _unguarded

    def guard(_soft: float | None, _hard: float | None) -> AbstractContextManager[None]:
        return alarm_guard(soft, None, False)

    return guard


def _unguarded(_soft: float | None, _hard: float | None) -> AbstractContextManager[None]:
    return nullcontext()


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
    marks_started = True

    def start(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self.children: list[Child] = []
        self.stopping = False
        self.counter = 0
        # children are forked only by this thread and the reader: PR_SET_PDEATHSIG ties a
        # child to the thread that forked it; other threads poke the reader instead
        self.poke_r, self.poke_w = os.pipe()
        self.watch = _Watch(self.poke_r)
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

    def room(self) -> int:
        with self.lock:
            if self.stopping:
                return 0
            depth = self.depth()
            return sum(self._room(c, depth) for c in self.children)

    def _room(self, child: Child, depth: int) -> int:
        # (no is_alive() here, a system call per child per job: a dead child's jobs go
        # back when its pipe refuses them or when the reader reaps it)
        if child.retiring:
            return 0
        room = depth - len(child.jobs)
        if self.max_tasks_per_child:
            room = min(room, self.max_tasks_per_child - child.assigned)
        return max(0, room)

    def _fits(self, child: Child, depth: int, cost: float) -> bool:
        """A job of expected runtime ``cost`` may go to ``child``: it is idle, or the
        jobs it holds and this one are at most DEPTH_BUDGET of expected work."""
        if self._room(child, depth) <= 0:
            return False
        return not child.jobs or child.load + cost <= DEPTH_BUDGET

    def accepts(self, job: Job) -> bool:
        with self.lock:
            if self.stopping:
                return False
            depth, cost = self.depth(), self.cost(job.task_name)
            return any(self._fits(c, depth, cost) for c in self.children)

    def submit(self, job: Job) -> None:
        """Queue ``job`` for the child with the most room (an idle one first) that it
        fits in; it is sent with the next ``flush()``."""
        with self.lock:
            depth, cost = self.depth(), self.cost(job.task_name)
            fitting = [c for c in self.children if self._fits(c, depth, cost)]
            if not fitting:
                raise RuntimeError("no idle pool process")
            child = max(fitting, key=lambda c: self._room(c, depth))
            hard, soft = self.limits_for(job)
            child.outbox.append((job, hard, soft))
            child.jobs.append(job)
            child.load += cost
            child.assigned += 1
            assert child.process.pid is not None
            slot = Running(
                job, time.monotonic(), child.process.pid, queued=True, cost=cost, hard=hard
            )
            self.running[job.id] = slot
            front = self._begin(child) if len(child.jobs) == 1 else None
        if front is not None:
            self.on_started(front)

    def flush(self) -> None:
        """Send each child the jobs submitted for it, in one message."""
        undelivered: list[Job] = []
        with self.lock:
            for child in self.children:
                if not child.outbox:
                    continue
                batch, child.outbox = child.outbox, []
                try:
                    _send(child.conn, batch)
                except OSError:  # it just died: these never reached it
                    undelivered += self._take_back(child, [job for job, _, _ in batch])
        for job in undelivered:
            self.on_release(job)

    def _take_back(self, child: Child, jobs: list[Job]) -> list[Job]:
        ids = {job.id for job in jobs}
        child.jobs = deque(job for job in child.jobs if job.id not in ids)
        for job in jobs:
            self._unload(child, self.running.pop(job.id, None))
        return jobs

    @staticmethod
    def _unload(child: Child, slot: Running | None) -> None:
        child.load = child.load - slot.cost if slot is not None and child.jobs else 0.0

    def _begin(self, child: Child) -> Job | None:
        """The child's first job starts now (its deadline runs); a terminate that came
        while it was queued kills the child now. Returns the job (to mark it started)."""
        job = child.job
        slot = self.running.get(job.id) if job is not None else None
        if job is None or slot is None:
            return None
        now, hard = time.monotonic(), slot.hard  # (the limits the child was sent)
        slot.started, slot.queued = now, False
        slot.hard_deadline = now + hard if hard else None
        if isinstance(slot.killed_for, Terminated):
            _kill(child.process.pid, slot.killed_for.args[0])
        return job

    @staticmethod
    def _idle(child: Child) -> bool:
        return not child.jobs and not child.retiring and child.process.is_alive()

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
            for child in sorted(serving, key=lambda c: len(c.jobs))[:n]:
                child.retiring = True
                if not child.jobs:
                    self._retire(child)
            self.limit -= n

    def _retire(self, child: Child) -> None:
        try:
            _send(child.conn, None)
        except OSError:
            pass

    def terminate(self, task_id: str, signum: int) -> bool:
        """Signal the child running ``task_id``. Under the lock, ``child.job`` is that job
        until its outcome was received, and the child runs its next job only after that:
        the signal can reach that job or an idle child, never a later job. A job still
        queued behind another is marked: the child is signalled when it gets there."""
        with self.lock:
            for child in self.children:
                for position, job in enumerate(child.jobs):
                    if job.task_id != task_id:
                        continue
                    slot = self.running.get(job.id)
                    if slot is not None:
                        slot.killed_for = Terminated(signum)
                    if position == 0:
                        _kill(child.process.pid, signum)
                    return True
        return False

    def revoke(self, task_ids: list[str]) -> None:
        """Tell each child that holds one of these tasks queued behind the job it runs
        (or about to be sent to it) to refuse it; a job a child already runs goes on."""
        wanted = set(task_ids)
        with self.lock:
            for child in self.children:
                if any(job.task_id in wanted for job in list(child.jobs)[1:]):
                    try:
                        _send(child.conn, ("revoke", sorted(wanted)))
                    except OSError:
                        pass  # it just died: the reader puts its queued jobs back

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
                for s in self._fronts(children)
                if s.hard_deadline and s.killed_for is None
            ]
        timeout = 0.5
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        ready, poked = self.watch.ready(children, timeout)
        if poked:
            os.read(self.poke_r, 1024)
        hungry = False
        for child in children:
            if child.fd in ready:
                hungry |= self._receive_all(child)
            elif child.process.sentinel in ready:
                self._reap(child)
        if hungry:
            self.on_free()
        self._enforce_hard_limits(children)
        if self._top_up():
            self.on_free()
        if any(len(child.jobs) > 1 for child in children):
            # children hold queues of short jobs: let their next outcomes gather in the
            # pipes and take them in one wake-up instead of being woken for each (a lone
            # job, the get() path, never waits here; a child killed meanwhile leaves its
            # outcomes in the pipe, read before it is reaped)
            time.sleep(GATHER)

    def _receive_all(self, child: Child) -> bool:
        """Take every outcome waiting in the child's pipe (one wake-up for several when
        the parent is busy) and hand them on together; True if the child now wants more
        jobs (at most half of its depth left: waking the consumer for every outcome cost
        more than the jobs). A child that died is reaped once its pipe is empty, so
        outcomes it sent before dying are never reported lost."""
        items, ended = child.answers.read()
        outcomes: list[Outcome] = []
        unread: list[tuple[Job, WorkerLostError]] = []
        front = None
        with self.lock:
            for item in items:
                job = child.jobs.popleft() if child.jobs else None
                if isinstance(item, Unreadable):  # (answers come in the order of the jobs)
                    self._unload(child, self.running.pop(job.id, None) if job else None)
                    if job is not None:
                        pid = child.process.pid
                        unread.append((job, WorkerLostError(f"pool process {pid}: {item.reason}")))
                    continue
                self._unload(child, self.running.pop(item.job_id, None))
                if job is not None and job.id != item.job_id:  # never expected; be loud
                    logger.error("pool process %s answered for the wrong job", child.process.pid)
                outcomes.append(item)
            if items:
                # only the job it runs now started: the others answered here ran and
                # ended (their started marks would be dropped by the completer anyway)
                front = self._begin(child)
                if child.retiring and not child.jobs:
                    self._retire(child)
            hungry = bool(items) and len(child.jobs) <= self.depth() // 2
        if outcomes:
            self.on_outcomes(outcomes)
        for job, error in unread:
            self.on_lost(job, error)
        if front is not None:
            self.on_started(front)
        if ended:
            self._reap(child)
        return hungry

    def _reap(self, child: Child) -> None:
        child.process.join(timeout=1)
        with self.lock:
            if child not in self.children:
                return
            self.children.remove(child)
            unsent = {queued.id for queued, _, _ in child.outbox}
            child.outbox = []
            job = child.job if child.job is not None and child.job.id not in unsent else None
            slot = self.running.pop(job.id, None) if job is not None else None
            never_started = self._take_back(child, [j for j in child.jobs if j is not job])
            child.jobs.clear()
        child.conn.close()
        if job is not None:
            cause = slot.killed_for if slot is not None else None
            self.on_lost(job, cause or self._exit_error(child, job))
        for queued in never_started:
            self.on_release(queued)
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

    def _fronts(self, children: list[Child]) -> list[Running]:
        """The slots of the jobs the children run: only those have a hard deadline (a
        job queued behind gets one when it reaches the front, ``_begin``). Looking at
        these instead of every running slot: a drain holds up to 128 queued per child."""
        slots = (self.running.get(child.jobs[0].id) for child in children if child.jobs)
        return [slot for slot in slots if slot is not None]

    def _enforce_hard_limits(self, children: list[Child]) -> None:
        now = time.monotonic()
        with self.lock:
            for slot in self._fronts(children):
                if slot.hard_deadline and slot.killed_for is None and now >= slot.hard_deadline:
                    hard = slot.hard
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
                        _send(child.conn, None)
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
