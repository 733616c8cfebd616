"""The storage seam for jobs: publish, claim, record outcomes, release, rescue, purge.

Everything that crosses the wire is batched: ``publish`` inserts any number of messages
in one statement, ``claim`` takes as many due jobs as a worker has free slots, and
``commit`` records a whole batch of outcomes (results, retries, releases, dead letters
and the callbacks they publish) in one pipelined transaction — so a callback is published
exactly when its parent's outcome is recorded, never one without the other.

Chords are joined in the same transaction: the statement that records a header task's
outcome decrements its chord's counter, and when a counter reaches zero the broker's
``joiner`` (``celeriac.chords.ChordJoiner``, set by the app) publishes the body before
the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from celeriac import states
from celeriac.db.pool import Database, reused_cursor
from celeriac.db.queries import query
from celeriac.message import ChordJoin, FinalState, Job, Message, MessageBatch, encode_headers

logger = logging.getLogger(__name__)

# publish_copy's columns as binary COPY sends them. headers is jsonb, whose binary form is
# a version byte and the JSON text: sent as bytes, the JSON the batch built is not parsed
# and dumped again on the way.
COPY_TYPES = "text text text int2 timestamptz bool bool text bytea bytea".split()
JSONB_V1 = b"\x01"


def jobs_channel(schema: str) -> str:
    """NOTIFY channel that wakes workers; the payload is a queue name."""
    return f"celeriac_jobs.{schema}"


def results_channel(schema: str) -> str:
    """NOTIFY channel that wakes ``get()``; the payload is comma-separated task ids."""
    return f"celeriac_results.{schema}"


def values_channel(schema: str) -> str:
    """NOTIFY channel carrying small results whole (``value_payload``), so a ``get()``
    woken by one needs no read."""
    return f"celeriac_values.{schema}"


# a batch of at most this many finishes announces small results whole: someone is likely
# waiting on each (delay().get()); a drain's large batches send ids only
VALUES_BATCH = 8
VALUE_LIMIT = 7800  # bytes of a payload (NOTIFY takes fewer than 8000)
JSON = "application/json"


def value_payload(f: Finish) -> str | None:
    """``[task_id, status, content_type, result]`` as JSON for a stored SUCCESS whose JSON
    result is small; None for anything else (its waiter reads the row)."""
    if not f.store or f.status != states.SUCCESS or f.content_type != JSON or f.result is None:
        return None
    if len(f.result) > VALUE_LIMIT:
        return None
    try:
        payload = json.dumps([f.task_id, f.status, f.content_type, f.result.decode()])
    except UnicodeDecodeError:
        return None
    return payload if len(payload.encode()) <= VALUE_LIMIT else None


def control_channel(schema: str) -> str:
    """NOTIFY channel for remote control of workers (JSON payloads)."""
    return f"celeriac_control.{schema}"


@dataclass(slots=True)
class Finish:
    """A job ended (SUCCESS, FAILURE, REVOKED...): delete it, store its outcome. Not
    frozen, like ``Job``: one is built per job recorded, in the worker's hot path."""

    job_id: int
    attempt: int
    task_id: str
    status: str
    content_type: str
    result: bytes | None
    traceback: str | None = None
    store: bool = True
    date_started: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """A job retried (new eta, maybe new args) or released (``eta`` None, ``retry`` False)."""

    job_id: int
    attempt: int
    task_id: str
    retry: bool = True
    eta: dt.datetime | None = None
    content_type: str = "application/json"
    result: bytes | None = None
    traceback: str | None = None
    store: bool = True
    body: bytes | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A non-final state to store (STARTED, PROGRESS...)."""

    task_id: str
    status: str
    content_type: str
    result: bytes | None
    name: str | None = None
    date_started: dt.datetime | None = None


@dataclass(slots=True)
class Batch:
    """Everything a worker records in one transaction."""

    finished: list[Finish] = field(default_factory=list)
    requeued: list[Requeue] = field(default_factory=list)
    buried: list[tuple[int, int, str]] = field(default_factory=list)
    states: list[StateUpdate] = field(default_factory=list)
    # messages published by finished jobs (callbacks, errbacks): (parent job id, message)
    publish: list[tuple[int, Message]] = field(default_factory=list)
    # chords started by finished jobs (a chord as the next step of a chain)
    chords: list[tuple[int, ChordJoin]] = field(default_factory=list)
    # final states of tasks that will never run (the rest of a failed chain)
    marks: list[tuple[int, FinalState]] = field(default_factory=list)
    # prefetched jobs started since the last write: (job id, attempt)
    started: list[tuple[int, int]] = field(default_factory=list)

    def alone(self) -> bool:
        """Only finishes (what they publish, started marks): one statement can record it."""
        return not (self.requeued or self.buried or self.states or self.marks)

    def without(self, job_ids: set[int]) -> Batch:
        """The finishes of other jobs than ``job_ids``, with what they publish."""
        return Batch(
            finished=[f for f in self.finished if f.job_id not in job_ids],
            publish=[(parent, m) for parent, m in self.publish if parent not in job_ids],
            chords=[(parent, c) for parent, c in self.chords if parent not in job_ids],
        )

    def __bool__(self) -> bool:
        return bool(
            self.finished
            or self.requeued
            or self.buried
            or self.states
            or self.publish
            or self.started
        )


AfterCommit = Callable[[], None]


class Joiner(Protocol):
    """Joins complete chords inside the recording transaction (``celeriac.chords``)."""

    def __call__(self, conn: psycopg.Connection[Any], group_ids: list[str]) -> list[AfterCommit]:
        """Publish the bodies of these chords; return what to run after commit."""

    def store_final(
        self, conn: psycopg.Connection[Any], states: Sequence[FinalState]
    ) -> list[AfterCommit]:
        """Store final states of tasks that will never run; join the chords they end."""


class Broker:
    """Jobs in PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.schema = db.schema
        self.channel = jobs_channel(db.schema)
        self.results_channel = results_channel(db.schema)
        self.values_channel = values_channel(db.schema)
        self.notify_values = True  # celeriac_notify_results: small results whole in NOTIFY
        self.joiner: Joiner | None = None

    def _q(self, name: str) -> bytes:
        return query(name, self.schema)

    # -- publishing -------------------------------------------------------------
    def publish(
        self,
        messages: Sequence[Message],
        conn: psycopg.Connection[Any] | None = None,
        chords: Sequence[ChordJoin] = (),
        durable: bool = True,
        sort_key: dt.datetime | None = None,
    ) -> None:
        """Insert messages (and the chords they start) in one statement; on ``conn``
        (caller's transaction) if given. Idempotent by task id: an id already queued,
        running or with a result is skipped. ``durable`` False commits asynchronously
        (only on celeriac's own connection, never in a caller's transaction).
        ``sort_key`` places them in the queue as a later step of a workflow published
        then (a joined chord's body), instead of now (broker claim order)."""
        if not messages and not chords:
            return
        if len(messages) == 1 and not chords:
            name, params = "publish_one", self._one_params(messages[0])
        else:
            name, params = "publish", self._publish_params(messages)
            params.update(chord_params(chords))
        params["sort_key"] = sort_key
        self._write(name, params, conn, durable)

    def publish_batch(
        self,
        batch: MessageBatch,
        conn: psycopg.Connection[Any] | None = None,
        durable: bool = True,
        fresh: bool = False,
    ) -> None:
        """Insert a batch of calls of one task with shared options (``publish_batch``).
        ``fresh``: the batch's ids were made for this call and this is its first try, so
        on celeriac's own connection it goes in by binary COPY (``publish_copy``)."""
        if not batch.task_ids:
            return
        if fresh and conn is None and batch.eta is None:
            self._copy_batch(batch, durable)
        else:
            params = {**batch.params(), "channel": self.channel}
            self._write("publish_batch", params, conn, durable)

    def _copy_batch(self, batch: MessageBatch, durable: bool) -> None:
        """``publish_copy``: ids made for this call never conflict (a unique violation here
        would be an error like any other)."""
        same = (
            batch.task_name,
            batch.queue,
            batch.priority,
            batch.expires,
            batch.acks_late,
            batch.reject_on_worker_lost,
            batch.content_type,
        )
        with self.db.connection() as own, own.transaction():
            with own.cursor().copy(self._q("publish_copy")) as copy:
                copy.set_types(COPY_TYPES)
                for task_id, headers, body in batch.rows():  # built as they are sent
                    copy.write_row((task_id, *same, JSONB_V1 + headers.encode(), body))
            notify = {"channel": self.channel, "queue": batch.queue, "durable": durable}
            own.execute(self._q("publish_copy_notify"), notify)

    def _write(
        self, name: str, params: dict[str, Any], conn: psycopg.Connection[Any] | None, durable: bool
    ) -> None:
        """Run a publish query. In a caller's transaction it runs as written (ON CONFLICT
        DO NOTHING: an error would abort the caller's work). On our own connection it runs
        first without that clause — speculative insertion costs about a third more per row,
        and fresh ids never conflict — and again with it after a unique violation (a task
        id published before, e.g. by an attempt whose COMMIT reply was lost)."""
        params["durable"] = durable or conn is not None
        if conn is not None:
            conn.execute(self._q(name), params)
            return
        with self.db.connection() as own:
            try:
                reused_cursor(own).execute(without_on_conflict(self._q(name)), params)
            except psycopg.errors.UniqueViolation:
                own.execute(self._q(name), params)

    def _one_params(self, m: Message) -> dict[str, Any]:
        return {
            "task_id": m.task_id,
            "task_name": m.task_name,
            "queue": m.queue,
            "priority": m.priority,
            "eta": m.eta,
            "expires": m.expires,
            "retries": m.retries,
            "acks_late": m.acks_late,
            "reject_on_worker_lost": m.reject_on_worker_lost,
            "content_type": m.content_type,
            "headers": encode_headers(m.headers),
            "body": m.body,
            "channel": self.channel,
        }

    def _publish_params(self, messages: Sequence[Message]) -> dict[str, Any]:
        return {
            "task_ids": [m.task_id for m in messages],
            "task_names": [m.task_name for m in messages],
            "queues": [m.queue for m in messages],
            "priorities": [m.priority for m in messages],
            "etas": [m.eta for m in messages],
            "expires": [m.expires for m in messages],
            "retries": [m.retries for m in messages],
            "acks_late": [m.acks_late for m in messages],
            "reject_on_worker_lost": [m.reject_on_worker_lost for m in messages],
            "content_types": [m.content_type for m in messages],
            "headers": [encode_headers(m.headers) for m in messages],
            "bodies": [m.body for m in messages],
            "channel": self.channel,
        }

    # -- consuming ---------------------------------------------------------------
    def prepare_claims(self, conn: psycopg.Connection[Any]) -> None:
        """Make ``conn`` (a worker's claim connection) plan every claim as an ordered scan
        of ``jobs_claim`` that stops after LIMIT entries, whatever the table's statistics
        say. A queue table swings from empty to a large backlog between two ANALYZEs;
        after a VACUUM of the empty table (autovacuum, or the maintenance leader's) the
        planner believes it holds no rows and picks a bitmap scan of every queued job
        followed by a sort: each claim then costs O(backlog) (measured: 120 ms per claim
        with 80,000 queued, and drain throughput falling with backlog size). The claim
        connection runs only index-backed lookups, so turning these two plans off costs
        nothing elsewhere."""
        conn.execute(
            "SELECT set_config('enable_bitmapscan', 'off', false), "
            "set_config('enable_seqscan', 'off', false)"
        )

    def claim(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        limit: int,
        worker_id: int,
        start: int | None = None,
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs of ``queue`` for ``worker_id``, in claim order
        (priority, then place in the queue); the first ``start`` of them (default all)
        start now, the rest are prefetched."""
        return self.claim_due(conn, queue, limit, worker_id, start)[0]

    def claim_due(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        limit: int,
        worker_id: int,
        start: int | None = None,
    ) -> tuple[list[Job], dt.datetime | None]:
        """``claim``, and when it got fewer than ``limit`` jobs (nothing more was due),
        when the queue's earliest other queued job is due (None: none, or not short)."""
        params = {"queue": queue, "limit": limit, "worker_id": worker_id}
        params["start"] = begin = limit if start is None else start
        rows = reused_cursor(conn).execute(self._q("claim"), params).fetchall()
        later = rows[0][-1] if rows else None
        rows = sorted((row for row in rows if row[0] is not None), key=lambda row: row[-2])
        jobs = [
            Job.from_row(row[:15], started=row[-2] <= begin, limits=(row[15], row[16]))
            for row in rows
        ]
        return jobs, later

    def commit(
        self, conn: psycopg.Connection[Any], batch: Batch, worker: str, result_expires: float
    ) -> set[int]:
        """Record a batch of outcomes; return the accepted job ids. ``conn`` is an
        autocommit connection. A batch of plain finishes — the usual one — is a single
        statement, its own transaction (one round trip instead of a pipelined BEGIN ...
        COMMIT); what it leaves (chord and group members, refused outcomes) and every other
        batch go through one transaction (``_commit_together``)."""
        if not batch.finished or not batch.alone():
            return self._commit_together(conn, batch, worker, result_expires)
        if len(batch.finished) == 1 and not (batch.publish or batch.chords or batch.started):
            params = self._one_finish_params(batch.finished[0], worker, result_expires)
            rows = reused_cursor(conn).execute(self._q("finish_one"), params).fetchall()
        else:
            params = self._finish_params(batch.finished, worker, result_expires)
            params.update(self._workflow_params(batch))
            params.update(self._value_params(batch.finished), alone=True)
            ids, attempts = zip(*batch.started, strict=True) if batch.started else ((), ())
            params.update(s_jobs=list(ids) or None, s_attempts=list(attempts) or None)
            rows = reused_cursor(conn).execute(self._q("finish_alone"), params).fetchall()
        accepted = {row[0] for row in rows}
        rest = batch.without(accepted)
        if rest.finished:
            accepted |= self._commit_together(conn, rest, worker, result_expires)
        return accepted

    def _commit_together(
        self, conn: psycopg.Connection[Any], batch: Batch, worker: str, result_expires: float
    ) -> set[int]:
        """Record a batch of outcomes in one transaction; return the accepted job ids."""
        with conn.transaction(), conn.pipeline():
            finish = retry = None
            if batch.started:
                ids, attempts = zip(*batch.started, strict=True)
                conn.execute(
                    self._q("mark_started"), {"job_ids": list(ids), "attempts": list(attempts)}
                )
            if batch.finished:
                params = self._finish_params(batch.finished, worker, result_expires)
                params.update(self._workflow_params(batch))
                params["alone"] = False
                finish = conn.execute(self._q("finish"), params)
            if batch.requeued:
                params = self._requeue_params(batch.requeued, worker, result_expires)
                retry = conn.execute(self._q("retry"), params)
            buried = [
                conn.execute(self._q("bury"), {"job_id": job_id, "attempt": attempt, "error": e})
                for job_id, attempt, e in batch.buried
            ]
            for update in batch.states:
                params = self._state_params(update, worker, result_expires)
                conn.execute(self._q("store_state"), params)
            self._notify_retries(conn, batch)
            accepted = {row[0] for row in retry.fetchall()} if retry is not None else set()
            # finish returns, per accepted job, the chords its batch completed; so does bury
            ready: list[str] = []
            for job_id, complete, _ in finish.fetchall() if finish is not None else ():
                accepted.add(job_id)
                ready.extend(complete or ())
            for cursor in buried:
                ready.extend(group_id for group_id, left in cursor.fetchall() if left <= 0)
            after = self._follow_up(conn, batch, accepted, ready)
        accepted.update(job_id for job_id, _, _ in batch.buried)
        run_after_commit(after)
        return accepted

    def _follow_up(
        self, conn: psycopg.Connection[Any], batch: Batch, accepted: set[int], ready: list[str]
    ) -> list[AfterCommit]:
        """Mark the rest of failed chains and join the chords that became complete."""
        marks = [mark for job_id, mark in batch.marks if job_id in accepted]
        if self.joiner is None or not (marks or ready):
            return []
        after = self.joiner.store_final(conn, marks) if marks else []
        return after + (self.joiner(conn, sorted(set(ready))) if ready else [])

    def _children_params(self, items: list[tuple[int, Message]]) -> dict[str, Any]:
        params = self._publish_params([message for _, message in items])
        children = {f"c_{key}": value for key, value in params.items() if key != "channel"}
        children["c_parents"] = [parent for parent, _ in items]
        return children

    def _workflow_params(self, batch: Batch) -> dict[str, Any]:
        """What finished jobs publish, for ``finish``: callbacks and chain steps (``c_*``),
        chords they start (``h_*``). Nothing (the usual case) goes as NULL arrays: psycopg
        then adapts none of the 18 empty lists."""
        params = self._children_params(batch.publish)
        params.update(chord_params([c for _, c in batch.chords], batch.chords))
        return {key: value or None for key, value in params.items()}

    def _finish_params(self, items: list[Finish], worker: str, expires: float) -> dict[str, Any]:
        return {
            "job_ids": [f.job_id for f in items],
            "attempts": [f.attempt for f in items],
            "statuses": [f.status for f in items],
            "content_types": [f.content_type for f in items],
            "results": [f.result for f in items],
            "tracebacks": [f.traceback for f in items],
            "stores": [f.store for f in items],
            "started": [f.date_started for f in items],
            "worker": worker,
            "expires": expires,
            "channel": self.channel,
            "results_channel": self.results_channel,
            "announce": chunk_ids([f.task_id for f in items if f.store]),
        }

    def _one_finish_params(self, f: Finish, worker: str, expires: float) -> dict[str, Any]:
        """``finish_one``'s scalar parameters."""
        return {
            "job_id": f.job_id,
            "attempt": f.attempt,
            "task_id": f.task_id,
            "status": f.status,
            "content_type": f.content_type,
            "result": f.result,
            "traceback": f.traceback,
            "store": f.store,
            "started": f.date_started,
            "worker": worker,
            "expires": expires,
            "alone": True,
            "results_channel": self.results_channel,
            "values_channel": self.values_channel,
            "v_payload": value_payload(f) if self.notify_values else None,
        }

    def _value_params(self, items: list[Finish]) -> dict[str, Any]:
        """``finish_alone``'s whole results (``value_payload``), for small batches."""
        small = self.notify_values and len(items) <= VALUES_BATCH
        values = [(f.job_id, value_payload(f)) for f in items] if small else []
        values = [(job_id, payload) for job_id, payload in values if payload is not None]
        return {
            "values_channel": self.values_channel,
            "v_jobs": [job_id for job_id, _ in values] or None,
            "v_payloads": [payload for _, payload in values] or None,
        }

    def _requeue_params(self, items: list[Requeue], worker: str, expires: float) -> dict[str, Any]:
        return {
            "job_ids": [r.job_id for r in items],
            "attempts": [r.attempt for r in items],
            "etas": [r.eta for r in items],
            "content_types": [r.content_type for r in items],
            "results": [r.result for r in items],
            "tracebacks": [r.traceback for r in items],
            "stores": [r.store and r.retry for r in items],
            "bodies": [r.body for r in items],
            "queues": [r.queue for r in items],
            "retry": [r.retry for r in items],
            "worker": worker,
            "expires": expires,
            "channel": self.channel,
        }

    def _state_params(self, update: StateUpdate, worker: str, expires: float) -> dict[str, Any]:
        return {
            "task_id": update.task_id,
            "status": update.status,
            "content_type": update.content_type,
            "result": update.result,
            "traceback": None,
            "name": update.name,
            "worker": worker,
            "date_started": update.date_started,
            "expires": expires,
            "channel": self.results_channel,
        }

    def _notify_retries(self, conn: psycopg.Connection[Any], batch: Batch) -> None:
        """Announce the RETRY states stored (finish announces its own results)."""
        ids = [r.task_id for r in batch.requeued if r.store and r.retry]
        for payload in chunk_ids(ids):
            conn.execute("SELECT pg_notify(%s, %s)", (self.results_channel, payload))

    # -- maintenance and operations ---------------------------------------------------
    def purge(self, queues: Iterable[str]) -> int:
        """Delete waiting jobs of ``queues``; return how many."""
        with self.db.connection() as conn:
            row = conn.execute(self._q("purge"), {"queues": list(queues)}).fetchone()
        return int(row[0]) if row else 0

    def queue_lengths(self) -> dict[str, int]:
        """Waiting jobs per queue."""
        with self.db.connection() as conn:
            return dict(conn.execute(self._q("queue_lengths")).fetchall())


def chord_params(
    chords: Sequence[ChordJoin], parents: Sequence[tuple[int, ChordJoin]] = ()
) -> dict[str, Any]:
    """Parameters creating chords in ``publish`` / ``finish`` (``h_*``)."""
    return {
        "h_parents": [parent for parent, _ in parents],
        "h_group_ids": [c.group_id for c in chords],
        "h_task_ids": [json.dumps(list(c.task_ids)) for c in chords],
        "h_content_types": [c.content_type for c in chords],
        "h_bodies": [c.body for c in chords],
    }


@functools.cache
def without_on_conflict(query: bytes) -> bytes:
    """A publish query without its ``ON CONFLICT DO NOTHING`` on jobs (the first try)."""
    clause = b"ON CONFLICT DO NOTHING"
    assert query.count(clause) == 1, "a publish query has one ON CONFLICT DO NOTHING"
    return query.replace(clause, b"")


def run_after_commit(hooks: Sequence[AfterCommit]) -> None:
    """Run what waited for the commit (new-style errbacks of failed chord bodies)."""
    for hook in hooks:
        try:
            hook()
        except Exception:
            logger.exception("after-commit hook %r failed", hook)


def chunk_ids(ids: Sequence[str], limit: int = 7800) -> list[str]:
    """Join ids with commas into payloads under NOTIFY's 8000-byte limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for task_id in ids:
        if current and size + len(task_id) + 1 > limit:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(task_id)
        size += len(task_id.encode()) + 1
    if current:
        payloads.append(",".join(current))
    return payloads


__all__ = [
    "Batch",
    "Broker",
    "Finish",
    "Joiner",
    "Requeue",
    "StateUpdate",
    "chord_params",
    "chunk_ids",
    "control_channel",
    "jobs_channel",
    "results_channel",
    "values_channel",
]
