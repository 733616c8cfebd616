"""Records outcomes in batches: whatever finished while the last write was in flight
goes in the next single transaction (results, retries, callbacks, NOTIFYs).

If the database is unreachable the batch is kept and retried with backoff — an outcome
is never dropped. Outcomes refused by the fencing token (the job was rescued and
re-claimed meanwhile) are logged as refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.broker import Batch, Finish, Requeue
from celeriac.db.pool import Database, is_connection_error
from celeriac.exceptions import EncodeError
from celeriac.worker.executor import Outcome

if TYPE_CHECKING:
    from celeriac.backend import Backend
    from celeriac.broker import Broker
    from celeriac.message import Message

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
# outcomes waiting to be written past which the worker starts no more jobs (backpressure):
# a pool faster than its writes piled up ~12,000 unwritten outcomes in a 20,000-task drain
# (memory, and outcomes a crash would lose) without finishing it any sooner
BACKLOG = 2 * MAX_BATCH
REFUSED = "refused by the database"
# how long the writer lets outcomes gather while ``gather`` says more are on their way
GATHER = 0.001


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters; show them instead of failing."""
    return value.replace("\x00", "\\x00") if value and "\x00" in value else value


def to_batch(outcomes: list[Outcome]) -> Batch:
    """Translate outcomes into the broker's batch."""
    batch = Batch()
    for o in outcomes:
        batch.publish.extend((o.job_id, message) for message in o.publish)
        batch.chords.extend((o.job_id, chord) for chord in o.chords)
        batch.marks.extend((o.job_id, mark) for mark in o.marks)
        if o.kind == "finish":
            batch.finished.append(
                Finish(
                    o.job_id,
                    o.attempt,
                    o.task_id,
                    o.status,
                    o.content_type,
                    o.result,
                    _text(o.traceback),
                    o.store,
                    o.date_started,
                )
            )
        elif o.kind == "requeue":
            batch.requeued.append(
                Requeue(
                    o.job_id,
                    o.attempt,
                    o.task_id,
                    o.retry,
                    o.eta,
                    o.content_type,
                    o.result,
                    _text(o.traceback),
                    o.store,
                    o.body,
                    o.queue,
                )
            )
        elif o.kind == "started":
            batch.started.append((o.job_id, o.attempt))
        elif o.kind == "bury":
            batch.buried.append((o.job_id, o.attempt, _text(o.error) or "undecodable"))
            from celeriac.broker import StateUpdate

            batch.states.append(
                StateUpdate(o.task_id, o.status, o.content_type, o.result, o.task_name)
            )
    if batch.started:  # a job that also ended in this batch needs no mark: its row goes
        ended = {f.job_id for f in batch.finished} | {r.job_id for r in batch.requeued}
        ended.update(job_id for job_id, _, _ in batch.buried)
        batch.started = [mark for mark in batch.started if mark[0] not in ended]
    return batch


class Completer:
    """A thread that writes outcomes in batches.

    A connection failure keeps the whole batch and retries it (with backoff) on a new
    connection: the fencing token makes a retry after a lost COMMIT reply harmless. A
    batch the database *refuses* (a statement error, the connection still fine) is
    written one outcome at a time, and an outcome refused on its own is recorded as a
    FAILURE explaining why — one bad outcome never wedges the others.
    """

    def __init__(
        self,
        broker: Broker,
        db: Database,
        worker_name: str,
        result_expires: float,
        backend: Backend | None = None,
    ) -> None:
        self.broker = broker
        self.db = db
        self.worker_name = worker_name
        self.result_expires = result_expires
        self.backend = backend
        self.pending: deque[Outcome] = deque()
        self.cond = threading.Condition()
        self.inflight = 0
        self.inflight_ids: set[int] = set()
        self.stopping = False
        self.abandon = threading.Event()
        self.conn: Any = None
        # task_send_sent_event: records task-sent for what accepted outcomes published
        self.sent: Callable[[list[Message]], None] | None = None
        # called after a write that someone found ``behind`` waited on (the consumer
        # looks again); not after every write: on an idle worker that woke the consumer
        # needlessly on every job's outcome, alongside the client's get()
        self.written: Callable[[], None] | None = None
        self.waited_on = False
        # True while more outcomes are about to come (other jobs run): the writer then waits
        # for them, at most GATHER, before it writes. Set for the threads pool: its threads
        # end jobs one by one and the writer woke for each (900 finish statements per 10,000
        # no-op tasks, where prefork, whose reader gathers in worker/prefork.py, writes 105).
        # A lone job's outcome (the get() path) never waits: nothing else runs.
        self.gather: Callable[[], bool] | None = None
        self.gather_time = GATHER
        self.thread = threading.Thread(target=self._run, name="celeriac-completer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def add(self, *outcomes: Outcome) -> None:
        with self.cond:
            self.pending.extend(outcomes)
            self.cond.notify()

    def behind(self) -> bool:
        """More than BACKLOG outcomes wait to be written (or are being written); if so,
        ``written`` is called after the next write."""
        with self.cond:
            self.waited_on = len(self.pending) + self.inflight > BACKLOG
            return self.waited_on

    def job_ids(self) -> set[int]:
        """Jobs whose outcome is waiting to be written or being written."""
        with self.cond:
            return {outcome.job_id for outcome in self.pending} | self.inflight_ids

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything added so far is written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while self.pending or self.inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 1.0) if remaining is not None else 1.0)
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is pending (giving up after ``timeout``), then end the thread."""
        flushed = self.flush(timeout)
        if not flushed:
            self.abandon.set()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=5)
        if self.conn is not None:
            self.conn.close()
        return flushed

    def _take(self) -> list[Outcome] | None:
        with self.cond:
            while not self.pending and not self.stopping:
                self.cond.wait()
            deadline = time.monotonic() + self.gather_time
            while not self.stopping and self.gather is not None and self.gather():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)  # (each add() looks again: the last job ended?)
            if not self.pending or self.abandon.is_set():
                return None
            taken = [self.pending.popleft() for _ in range(min(MAX_BATCH, len(self.pending)))]
            self.inflight = len(taken)
            self.inflight_ids = {outcome.job_id for outcome in taken}
            return taken

    def _run(self) -> None:
        while True:
            outcomes = self._take()
            if outcomes is None:
                return
            try:
                self._write(outcomes)
            except Exception:  # never let the thread die: the worker would wedge
                logger.exception("completer: unexpected error writing %d outcome(s)", len(outcomes))
            with self.cond:
                self.inflight, self.inflight_ids = 0, set()
                self.cond.notify_all()
                wake, self.waited_on = self.waited_on, False
            if wake and self.written is not None:
                self.written()

    def _write(self, outcomes: list[Outcome]) -> None:
        backoff = 0.1
        while True:
            try:
                accepted = self._commit(outcomes)
                self._report(outcomes, accepted)
                if self.sent is not None:
                    self.sent([m for o in outcomes if o.job_id in accepted for m in o.publish])
                return
            except Exception as exc:
                if not self._lost_connection(exc):
                    self._write_apart(outcomes, exc)
                    return
                logger.error(
                    "cannot record %d outcome(s): %s; retrying in %.1fs",
                    len(outcomes),
                    exc,
                    backoff,
                )
            if self.abandon.wait(backoff):
                logger.error("gave up recording %d outcome(s) at shutdown", len(outcomes))
                return
            backoff = min(backoff * 2, 2.0)

    def _commit(self, outcomes: list[Outcome]) -> set[int]:
        if self.conn is None or self.conn.closed:
            self.conn = self.db.connect()
        return self.broker.commit(
            self.conn, to_batch(outcomes), self.worker_name, self.result_expires
        )

    def _lost_connection(self, exc: Exception) -> bool:
        """Was it the connection (retry the batch) rather than the data (write apart)?"""
        conn, broken = self.conn, True
        if conn is not None and not is_connection_error(exc):
            broken = bool(conn.closed or conn.broken)
        if broken and conn is not None:
            conn.close()
            self.conn = None
        return broken

    def _write_apart(self, outcomes: list[Outcome], exc: Exception) -> None:
        if len(outcomes) > 1:
            for outcome in outcomes:
                self._write([outcome])
            return
        outcome = outcomes[0]
        logger.error(
            "the database refused the outcome of %s[%s] (%s); recording a FAILURE instead",
            outcome.task_name,
            outcome.task_id,
            exc,
            extra={"task_id": outcome.task_id, "action": "refused"},
        )
        fallback = refused_outcome(outcome, exc, self.backend)
        if fallback is not None:
            self._write([fallback])

    def _report(self, outcomes: list[Outcome], accepted: set[int]) -> None:
        for outcome in outcomes:
            if outcome.kind != "started" and outcome.job_id not in accepted:
                logger.warning(
                    "outcome of %s[%s] refused: the job was rescued and re-claimed meanwhile "
                    "(fencing token %d is stale)",
                    outcome.task_name,
                    outcome.task_id,
                    outcome.attempt,
                    extra={"task_id": outcome.task_id, "action": "fenced"},
                )


def refused_outcome(outcome: Outcome, exc: Exception, backend: Backend | None) -> Outcome | None:
    """A FAILURE saying why ``outcome`` could not be stored; None if that failed already."""
    if outcome.error == REFUSED:
        return None  # even the plain FAILURE was refused: leave the job to the rescuer
    reason = EncodeError(
        f"the outcome of {outcome.task_name}[{outcome.task_id}] ({outcome.status}) could not "
        f"be recorded: {type(exc).__name__}: {str(exc).replace(chr(0), '')}"
    )
    content_type = backend.content_type if backend is not None else outcome.content_type
    return Outcome(
        outcome.job_id,
        outcome.attempt,
        outcome.task_id,
        outcome.task_name,
        "finish",
        states.FAILURE,
        content_type=content_type,
        result=backend.encode(reason) if backend is not None else None,
        traceback=str(reason),
        store=backend is not None,
        error=REFUSED,
    )
