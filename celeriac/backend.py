"""The storage seam for results: read, store, forget, revoke, and wait by notification.

Waiting (``AsyncResult.get``) subscribes to a per-process listener — one dedicated
connection that LISTENs on the results channel — and re-reads the row when a NOTIFY
names the task. A slow fallback poll covers a listener that is reconnecting.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from celeriac import serialization, states
from celeriac.broker import jobs_channel, results_channel, values_channel
from celeriac.db.pool import Database
from celeriac.db.queries import query

logger = logging.getLogger(__name__)

FALLBACK_POLL = 5.0  # seconds between re-reads while the listener is healthy


@dataclass(frozen=True, slots=True)
class ResultMeta:
    """A stored result row."""

    task_id: str
    status: str
    content_type: str
    result: bytes | None
    traceback: str | None
    name: str | None
    request_type: str | None
    request: bytes | None
    worker: str | None
    retries: int | None
    queue: str | None
    parent_id: str | None
    root_id: str | None
    group_id: str | None
    date_started: dt.datetime | None
    date_done: dt.datetime | None

    @property
    def ready(self) -> bool:
        return self.status in states.READY_STATES


class Backend:
    """Results in PostgreSQL."""

    def __init__(
        self, db: Database, accept: frozenset[str], serializer: str, expires: float
    ) -> None:
        self.db = db
        self.schema = db.schema
        self.accept = accept
        self.content_type = serializer
        self.expires = expires
        self.channel = results_channel(db.schema)
        self.joiner: Any = None  # celeriac.chords.ChordJoiner, set by the app

    def _q(self, name: str) -> bytes:
        return query(name, self.schema)

    # -- reading ----------------------------------------------------------------
    def get(self, task_id: str) -> ResultMeta | None:
        """The stored row for ``task_id``, or None (reads as PENDING)."""
        with self.db.connection() as conn:
            row = conn.execute(self._q("get_result"), {"task_id": task_id}).fetchone()
        return _meta(row) if row else None

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultMeta]:
        """Stored rows for several ids (missing ids are absent)."""
        with self.db.connection() as conn:
            rows = conn.execute(self._q("get_results"), {"task_ids": list(task_ids)}).fetchall()
        return {row[0]: _meta(row) for row in rows}

    def delivered(self, task_id: str) -> ResultMeta | None:
        """``task_id``'s result if its worker announced it whole to this process's
        listener while we waited (``ResultListener.value``); None: read the row."""
        return ResultListener.for_database(self.db, self.channel).value(task_id)

    def decode(self, meta: ResultMeta) -> Any:
        """The result value; exception states give the re-created exception."""
        if meta.result is None:
            return None
        value = serialization.loads(meta.result, meta.content_type, self.accept)
        if meta.status in states.EXCEPTION_STATES and serialization.is_exception_dict(value):
            return serialization.exception_from_dict(value)
        return value

    # -- writing ------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """Serialize a result (exceptions in Celery's dict form)."""
        if isinstance(value, BaseException):
            value = serialization.exception_to_dict(value)
        return serialization.dumps(value, self.content_type)

    def store_state(
        self,
        task_id: str,
        status: str,
        value: Any,
        *,
        traceback: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        date_started: dt.datetime | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        """Store a state (update_state, STARTED, results recorded outside a worker)."""
        params = {
            "task_id": task_id,
            "status": status,
            "content_type": self.content_type,
            "result": self.encode(value),
            "traceback": traceback,
            "name": name,
            "worker": worker,
            "date_started": date_started,
            "expires": self.expires,
            "channel": self.channel,
        }
        if conn is not None:
            conn.execute(self._q("store_state"), params)
            return
        with self.db.connection() as own:
            own.execute(self._q("store_state"), params)

    def forget(self, task_ids: Iterable[str]) -> None:
        """Delete stored results."""
        with self.db.connection() as conn:
            conn.execute(self._q("forget"), {"task_ids": list(task_ids)})

    def revoke(
        self, task_ids: Sequence[str], terminate: bool, signal: str | None, revoke_expires: float
    ) -> None:
        """Revoke durably; waiting jobs become REVOKED at once (so do the rest of their
        chains, and chords they were part of are joined); running ones get a NOTIFY."""
        from celeriac.broker import run_after_commit
        from celeriac.exceptions import TaskRevokedError

        reason = self.encode(TaskRevokedError("revoked"))
        after = []
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                self._q("revoke"),
                {
                    "task_ids": list(task_ids),
                    "terminate": terminate,
                    "signal": signal,
                    "expires": revoke_expires,
                    "content_type": self.content_type,
                    "result": reason,
                    "result_expires": self.expires,
                    "channel": self.channel,
                },
            ).fetchall()
            if self.joiner is not None:
                after = self.joiner.revoked(conn, rows)
            import json

            from celeriac.broker import control_channel

            conn.execute(
                "SELECT pg_notify(%s, %s)",
                (
                    control_channel(self.schema),
                    json.dumps(
                        {
                            "command": "revoke",
                            "task_ids": list(task_ids),
                            "terminate": terminate,
                            "signal": signal,
                        }
                    ),
                ),
            )
        run_after_commit(after)

    # -- groups ----------------------------------------------------------------------
    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        with self.db.connection() as conn:
            conn.execute(
                self._q("save_group"),
                {"group_id": group_id, "task_ids": list(task_ids), "expires": self.expires},
            )

    def restore_group(self, group_id: str) -> list[str] | None:
        with self.db.connection() as conn:
            row = conn.execute(self._q("get_group"), {"group_id": group_id}).fetchone()
        return list(row[0]) if row else None

    def delete_group(self, group_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute(self._q("delete_group"), {"group_id": group_id})

    # -- waiting ---------------------------------------------------------------------
    def wait_for(
        self,
        task_ids: Sequence[str],
        timeout: float | None,
        interval: float,
        done: Any,
        sent_at: float | None = None,
    ) -> None:
        """Block until ``done()`` is true, woken by result notifications.

        ``done`` re-reads the results; it is called at once, after each notification for
        one of ``task_ids`` and at the fallback poll. Raises TimeoutError after ``timeout``.
        ``sent_at`` (``time.monotonic()`` before the tasks were published): when this
        process's listener has been listening since before then and has heard nothing of
        them, no result can be stored yet, so the first read is skipped (one round trip
        less for ``delay().get()``).
        """
        from celeriac.exceptions import TimeoutError

        listener = ResultListener.for_database(self.db, self.channel)
        event = listener.subscribe(task_ids)
        read = sent_at is None or not listener.unheard(task_ids, sent_at)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not (read and done()):
                read = True
                poll = FALLBACK_POLL if listener.healthy else max(interval, 0.1)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("The operation timed out.")
                    poll = min(poll, remaining)
                event.wait(poll)
                event.clear()
        finally:
            listener.unsubscribe(task_ids, event)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _meta(row: tuple[Any, ...]) -> ResultMeta:
    values = list(row)
    values[3], values[7] = _bytes(values[3]), _bytes(values[7])
    return ResultMeta(*values)


# the fields of ResultMeta after the result that an announced result leaves unknown
_UNKNOWN = (None,) * 12


class ResultListener:
    """One LISTEN connection per process and database, shared by every waiter."""

    _instances: dict[tuple[int, str, str], ResultListener] = {}
    _instances_lock = threading.Lock()

    HEARD = 20_000  # task ids of recent notifications remembered (for ``unheard``)

    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._since: float | None = None  # monotonic time the current LISTEN took effect
        self._heard: dict[str, None] = {}  # recently notified ids, oldest first
        self._forgot_at = 0.0  # when an id last fell out of _heard
        # results announced whole (broker.value_payload) for tasks someone waits on
        self.values_channel = values_channel(db.schema)
        self._values: dict[str, ResultMeta] = {}

    @classmethod
    def for_database(cls, db: Database, channel: str) -> ResultListener:
        key = (os.getpid(), db.url, channel)
        with cls._instances_lock:
            if key not in cls._instances:
                cls._instances[key] = cls(db, channel)
            return cls._instances[key]

    @classmethod
    def stop_for(cls, db: Database) -> None:
        """Stop this process's listeners on ``db`` (``app.close()``); they restart on use."""
        with cls._instances_lock:
            mine = [key for key in cls._instances if key[0] == os.getpid() and key[1] == db.url]
            listeners = [cls._instances.pop(key) for key in mine]
        for listener in listeners:
            listener.stop()

    def stop(self) -> None:
        """End the listening thread and close its connection."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping = True
        try:  # wake the thread out of its wait with a notification of our own
            with psycopg.connect(self.db.url, autocommit=True) as conn:
                conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        except psycopg.Error:
            pass  # then it ends at its next notification or connection error
        thread.join(timeout=2.0)

    @property
    def healthy(self) -> bool:
        return self._listening.is_set()

    def subscribe(self, task_ids: Iterable[str]) -> threading.Event:
        event = threading.Event()
        with self._lock:
            for task_id in task_ids:
                self._waiters.setdefault(task_id, set()).add(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="celeriac-results", daemon=True
                )
                self._thread.start()
        self._listening.wait(2.0)
        return event

    def unheard(self, task_ids: Iterable[str], since: float) -> bool:
        """True when this listener has listened without a break since before ``since``
        (monotonic) and no notification since named any of ``task_ids``: a result
        stored after ``since`` would have been heard."""
        with self._lock:
            if self._since is None or self._since >= since or self._forgot_at >= since:
                return False
            return not any(task_id in self._heard for task_id in task_ids)

    def unsubscribe(self, task_ids: Iterable[str], event: threading.Event) -> None:
        with self._lock:
            for task_id in task_ids:
                waiters = self._waiters.get(task_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[task_id]
                        self._values.pop(task_id, None)

    def value(self, task_id: str) -> ResultMeta | None:
        """The result of ``task_id`` as its worker announced it at commit, if it came
        whole while someone waited on it (only the stored status, content type and
        result; the rest of the row reads as None)."""
        with self._lock:
            return self._values.pop(task_id, None)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                # keepalives: a dead socket (a partition) ends the wait, we reconnect
                conn = psycopg.connect(self.db.url, autocommit=True, **self.db.tcp)
            except psycopg.Error as exc:
                logger.warning("result listener cannot connect (%s); retrying", type(exc).__name__)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                conn.execute(  # one round trip: without parameters, both statements go
                    sql.SQL("LISTEN {}; LISTEN {}").format(
                        sql.Identifier(self.channel), sql.Identifier(self.values_channel)
                    )
                )
                with self._lock:
                    self._since = time.monotonic()
                self._listening.set()
                self._wake_all()  # anything stored while we were away
                backoff = 0.2
                for notify in conn.notifies():
                    if self._stopping:
                        return
                    if notify.channel == self.values_channel:
                        self._deliver(notify.payload)
                    else:
                        self._wake(notify.payload.split(","))
            except psycopg.Error:
                logger.warning("result listener lost its connection; reconnecting")
            finally:
                with self._lock:
                    self._since = None
                self._listening.clear()
                conn.close()

    def _wake(self, task_ids: list[str]) -> None:
        with self._lock:
            heard = self._heard
            for task_id in task_ids:
                heard.pop(task_id, None)
                heard[task_id] = None
                for event in self._waiters.get(task_id, ()):
                    event.set()
            if len(heard) > self.HEARD:
                for task_id in list(itertools.islice(heard, len(heard) - self.HEARD)):
                    del heard[task_id]
                self._forgot_at = time.monotonic()

    def _deliver(self, payload: str) -> None:
        """A result announced whole: kept for its waiters, who then need no read."""
        try:
            task_id, status, content_type, result = json.loads(payload)
            meta = ResultMeta(task_id, status, content_type, result.encode(), *_UNKNOWN)
        except (ValueError, TypeError, AttributeError):
            logger.warning("result listener: unreadable result notification ignored")
            return
        with self._lock:
            if task_id in self._waiters:
                self._values[task_id] = meta
        self._wake([task_id])

    def _wake_all(self) -> None:
        with self._lock:
            for waiters in self._waiters.values():
                for event in waiters:
                    event.set()


__all__ = ["Backend", "ResultListener", "ResultMeta", "jobs_channel"]
