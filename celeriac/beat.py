"""Beat: publishes periodic tasks; the schedule and its state live in PostgreSQL.

``beat_schedule`` (and ``app.add_periodic_task``) entries are copied into the
``periodic_tasks`` table when beat starts; entries can also be stored there at run time
(``save_periodic_task``), and every beat re-reads the table each loop and is woken by a
NOTIFY when it changes, so a change takes effect within a second or two.

Each tick is published at most once however many beats run: the tick's scheduled instant
is computed from the shared ``last_run_at``, and a row keyed by (entry, instant) is
inserted in the transaction that publishes the task — a second beat's insert conflicts
and publishes nothing. After downtime an entry runs once for the latest missed instant,
not once per missed instant (set ``beat_catch_up = True`` to get every missed one).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from celeriac import signals
from celeriac.db.queries import query
from celeriac.schedules import BaseSchedule, from_json, maybe_schedule

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0


def beat_channel(schema: str) -> str:
    """NOTIFY channel that tells beats the stored schedule changed."""
    return f"celeriac_beat.{schema}"


@dataclass(frozen=True)
class Entry:
    """One periodic task as stored."""

    name: str
    task: str
    schedule: BaseSchedule
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    last_run_at: dt.datetime
    total_run_count: int


def save_periodic_task(
    app: Celery,
    name: str,
    task: str,
    schedule: Any,
    args: Any = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    enabled: bool = True,
    source: str = "db",
    conn: Any = None,
) -> None:
    """Store (or change) a periodic task; running beats pick it up within seconds."""
    params = {
        "name": name,
        "task": task,
        "schedule": json.dumps(maybe_schedule(schedule).to_json()),
        "args": json.dumps(list(args)),
        "kwargs": json.dumps(dict(kwargs or {})),
        "options": json.dumps(dict(options or {}), default=str),
        "enabled": enabled,
        "source": source,
    }
    _write(app, "upsert_periodic_task", params, conn)


def delete_periodic_task(app: Celery, name: str) -> bool:
    """Remove a stored periodic task; False when there was none."""
    return _write(app, "delete_periodic_task", {"name": name}) is not None


def enable_periodic_task(app: Celery, name: str, enabled: bool = True) -> bool:
    """Enable or disable a stored periodic task; False when there is none."""
    return _write(app, "set_periodic_enabled", {"name": name, "enabled": enabled}) is not None


def _write(app: Celery, name: str, params: dict[str, Any], conn: Any = None) -> Any:
    db = app.database
    app.ensure_schema()
    if conn is None:
        with db.connection() as own:
            return _write(app, name, params, own)
    cursor = conn.execute(query(name, db.schema), params)
    row = cursor.fetchone() if cursor.description else None
    conn.execute("SELECT pg_notify(%s, %s)", (beat_channel(db.schema), name))
    return row


class Beat:
    """The beat service: one loop publishing due entries."""

    def __init__(self, app: Celery, max_interval: float | None = None) -> None:
        self.app = app
        self.max_interval = float(max_interval or app.conf.beat_max_loop_interval or 5)
        self.stopping = threading.Event()
        # stop(wake=False), from a signal handler: a plain flag, no lock (the handler runs
        # between two bytecodes of this loop, which may hold the event's lock then)
        self.halted = False
        self.conn: Any = None
        self.last_prune = 0.0
        self.published = 0
        # beat_catch_up: after downtime, publish every missed tick (default: only the last)
        self.catch_up = bool(app.conf.get("beat_catch_up"))

    @property
    def tz(self) -> str | None:
        return self.app.conf.timezone or None

    def sync_config(self) -> None:
        """Copy ``beat_schedule`` into the table (keeping state); drop removed entries."""
        self.app.ensure_schema()
        schedule = dict(self.app.conf.get("beat_schedule") or {})
        with self.app.database.connection() as conn, conn.transaction():
            for name, entry in schedule.items():
                save_periodic_task(
                    self.app,
                    name,
                    entry["task"],
                    entry["schedule"],
                    entry.get("args") or (),
                    entry.get("kwargs") or {},
                    entry.get("options") or {},
                    source="config",
                    conn=conn,
                )
            conn.execute(
                query("drop_config_entries", self.app.database.schema), {"names": list(schedule)}
            )

    def entries(self, conn: Any) -> list[Entry]:
        rows = conn.execute(query("beat_entries", self.app.database.schema)).fetchall()
        found = []
        for name, task, sched, args, kwargs, options, last_run_at, count in rows:
            try:
                parsed = from_json(sched, self.tz)
            except Exception as exc:
                logger.error("periodic task %s has a bad schedule %r: %s", name, sched, exc)
                continue
            found.append(Entry(name, task, parsed, args, kwargs, options, last_run_at, count))
        return found

    def tick(self, conn: Any) -> float:
        """Publish what is due; return the seconds until the next entry is due."""
        now = dt.datetime.now(dt.UTC)
        wait = self.max_interval
        for entry in self.entries(conn):
            due = entry.schedule.due_at(entry.last_run_at, now)
            if due is not None and self.catch_up:  # every missed instant, oldest first
                due = entry.schedule.next_after(entry.last_run_at)
            if due is not None:
                self.apply(entry, due)
            following = entry.schedule.next_after(due or entry.last_run_at)
            wait = min(wait, max(0.0, (following - now).total_seconds()))
        if time.monotonic() - self.last_prune > PRUNE_EVERY:
            conn.execute(query("prune_ticks", self.app.database.schema))
            self.last_prune = time.monotonic()
        return wait

    def apply(self, entry: Entry, run_at: dt.datetime) -> bool:
        """Publish one tick unless another beat already did; True if this beat did."""
        schema = self.app.database.schema
        task_id = str(uuid.uuid4())
        with self.app.database.connection() as conn, conn.transaction():
            params = {"name": entry.name, "run_at": run_at, "task_id": task_id}
            if conn.execute(query("claim_tick", schema), params).fetchone() is None:
                return False
            options = dict(entry.options)
            options["headers"] = {
                **(options.get("headers") or {}),
                "periodic_task_name": entry.name,
            }
            self.app.send_task(
                entry.task, entry.args, entry.kwargs, task_id=task_id, connection=conn, **options
            )
            conn.execute(query("ticked", schema), params)
        self.published += 1
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        return True

    def run(self, embedded: bool = False) -> None:
        """Run until ``stop()``."""
        if not embedded:
            self.app.import_default_modules()
        self.app.finalize()
        (signals.beat_embedded_init if embedded else signals.beat_init).send(sender=self)
        self.sync_config()
        logger.info("beat: Starting... (max interval %ss)", self.max_interval)
        backoff = 0.5
        while not self.stopped():
            try:
                self._loop_once()
                backoff = 0.5
            except Exception as exc:
                if self.stopped():
                    break
                logger.error("beat: %s; retrying in %.1fs", exc, backoff)
                self._close()
                self._pause(backoff)
                backoff = min(backoff * 2, self.max_interval)
        self._close()

    def stopped(self) -> bool:
        return self.halted or self.stopping.is_set()

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, in short slices so that a halt is seen quickly."""
        deadline = time.monotonic() + seconds
        while not self.stopped() and (remaining := deadline - time.monotonic()) > 0:
            self.stopping.wait(min(remaining, 0.5))

    def _loop_once(self) -> None:
        if self.conn is None or self.conn.closed:
            self.conn = self.app.database.connect()
            channel = beat_channel(self.app.database.schema)
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        wait = self.tick(self.conn)
        # sleep until the next entry is due or a schedule change wakes us; in short
        # slices, so stop() from a signal handler (which does no I/O) is seen quickly
        deadline = time.monotonic() + wait
        while not self.stopped():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or any(self.conn.notifies(timeout=min(remaining, 0.5), stop_after=1)):
                return

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def stop(self, wake: bool = True) -> None:
        """Stop the loop; ``wake=False`` from a signal handler (no I/O, no lock there)."""
        self.halted = True
        if not wake:
            return
        self.stopping.set()
        try:  # wake the loop (its own connection is busy waiting)
            with self.app.database.connection() as conn:
                conn.execute(
                    "SELECT pg_notify(%s, 'stop')", (beat_channel(self.app.database.schema),)
                )
        except Exception:
            pass


def start_embedded(app: Celery) -> Beat:
    """Run beat in a thread of this process (``celeriac worker -B``)."""
    beat = Beat(app)
    thread = threading.Thread(target=beat.run, kwargs={"embedded": True}, daemon=True)
    thread.name = "celeriac-beat"
    thread.start()
    return beat


__all__ = [
    "Beat",
    "beat_channel",
    "delete_periodic_task",
    "enable_periodic_task",
    "save_periodic_task",
    "start_embedded",
]
