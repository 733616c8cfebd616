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
from typing import TYPE_CHECKING, Any

from celeriac.broker import Batch, Finish, Requeue
from celeriac.db.pool import Database
from celeriac.worker.executor import Outcome

if TYPE_CHECKING:
    from celeriac.broker import Broker

logger = logging.getLogger(__name__)

MAX_BATCH = 1000


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
                    o.traceback,
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
                    o.traceback,
                    o.store,
                    o.body,
                    o.queue,
                )
            )
        elif o.kind == "bury":
            batch.buried.append((o.job_id, o.attempt, o.error or "undecodable"))
            from celeriac.broker import StateUpdate

            batch.states.append(
                StateUpdate(o.task_id, o.status, o.content_type, o.result, o.task_name)
            )
    return batch


class Completer:
    """A thread that writes outcomes in batches."""

    def __init__(
        self, broker: Broker, db: Database, worker_name: str, result_expires: float
    ) -> None:
        self.broker = broker
        self.db = db
        self.worker_name = worker_name
        self.result_expires = result_expires
        self.pending: deque[Outcome] = deque()
        self.cond = threading.Condition()
        self.inflight = 0
        self.stopping = False
        self.conn: Any = None
        self.thread = threading.Thread(target=self._run, name="celeriac-completer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def add(self, outcome: Outcome) -> None:
        with self.cond:
            self.pending.append(outcome)
            self.cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything added so far is written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while self.pending or self.inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.cond.wait(remaining if remaining is not None else 1.0)
        return True

    def stop(self) -> None:
        self.flush()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=5)
        if self.conn is not None:
            self.conn.close()

    def _take(self) -> list[Outcome] | None:
        with self.cond:
            while not self.pending and not self.stopping:
                self.cond.wait()
            if not self.pending:
                return None
            taken = [self.pending.popleft() for _ in range(min(MAX_BATCH, len(self.pending)))]
            self.inflight = len(taken)
            return taken

    def _run(self) -> None:
        while True:
            outcomes = self._take()
            if outcomes is None:
                return
            self._write(outcomes)
            with self.cond:
                self.inflight = 0
                self.cond.notify_all()

    def _write(self, outcomes: list[Outcome]) -> None:
        batch = to_batch(outcomes)
        backoff = 0.1
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self.db.connect()
                accepted = self.broker.commit(
                    self.conn, batch, self.worker_name, self.result_expires
                )
                break
            except Exception as exc:
                logger.error(
                    "cannot record %d outcome(s): %s; retrying in %.1fs",
                    len(outcomes),
                    exc,
                    backoff,
                )
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        for outcome in outcomes:
            if outcome.job_id not in accepted:
                logger.warning(
                    "outcome of %s[%s] refused: the job was rescued and re-claimed meanwhile "
                    "(fencing token %d is stale)",
                    outcome.task_name,
                    outcome.task_id,
                    outcome.attempt,
                    extra={"task_id": outcome.task_id, "action": "fenced"},
                )
