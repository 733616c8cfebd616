"""The worker's own connection: liveness lock, wake-ups, remote control, heartbeats.

It holds a session advisory lock keyed by the worker's id for as long as the worker
lives — the moment the process or its connection dies, the lock is gone and the
rescuer sees it. It LISTENs for new jobs (waking the consumer, coalesced: one wake-up
however many NOTIFYs arrive) and for control commands, and updates the heartbeat.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from celeriac.broker import control_channel, jobs_channel
from celeriac.db.pool import Database
from celeriac.db.queries import query

logger = logging.getLogger(__name__)


class Listener:
    """A thread on a dedicated connection."""

    def __init__(
        self,
        db: Database,
        worker_id: int,
        lock_ns: int,
        queues: list[str],
        wake: Callable[[], None],
        on_control: Callable[[dict[str, Any]], None],
        heartbeat_interval: float,
        info: Callable[[], dict[str, Any]],
        on_lost_registration: Callable[[int, bool], int],
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.lock_ns = lock_ns
        self.queues = set(queues)
        self.wake = wake
        self.on_control = on_control
        self.interval = heartbeat_interval
        self.info = info
        self.on_lost_registration = on_lost_registration
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.conn: psycopg.Connection[Any] | None = None
        self.thread = threading.Thread(target=self._run, name="celeriac-listener", daemon=True)

    def connect(self) -> None:
        """Connect, take the liveness lock, heartbeat and LISTEN.

        It registers again under a new id first when this worker was declared dead while
        it was away (its row stopped, its jobs rescued), or when its previous session
        still holds the lock (a cut the server has not noticed yet: the new id adopts the
        old one's running jobs)."""
        conn = self.db.connect()
        try:
            locked = conn.execute(
                query("lock_worker", self.db.schema),
                {"lock_ns": self.lock_ns, "worker_id": self.worker_id},
            ).fetchone()
            held = bool(locked and locked[0])
            if held and self._heartbeat(conn):
                for channel in (jobs_channel(self.db.schema), control_channel(self.db.schema)):
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self.conn = conn
                self.connected.set()
                return
        except BaseException:
            conn.close()
            raise
        conn.close()
        self._register_again(adopt=not held)
        self.connect()

    def _register_again(self, adopt: bool) -> None:
        if adopt:
            logger.warning(
                "the liveness lock of worker id %s is still held by its previous session; "
                "registering again and taking over its running jobs",
                self.worker_id,
            )
        else:
            logger.warning(
                "worker id %s was declared dead while its connection was down (its running "
                "jobs were rescued); registering again",
                self.worker_id,
            )
        self.worker_id = self.on_lost_registration(self.worker_id, adopt)

    def _heartbeat(self, conn: psycopg.Connection[Any]) -> bool:
        """Update the heartbeat; False if this worker's row was stopped meanwhile."""
        row = conn.execute(
            query("heartbeat", self.db.schema),
            {"worker_id": self.worker_id, "info": json.dumps(self.info())},
        ).fetchone()
        return row is not None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        conn = self.conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=1)
            except Exception:
                pass
        self.thread.join(timeout=5)
        if self.conn is not None:
            self.conn.close()

    def _run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.connect()  # the first connect happened at start: this is a reconnect
                    self.wake()  # jobs may have arrived while we were away
                    logger.info("worker connection re-established (worker id %s)", self.worker_id)
                    backoff = 0.2
                self._listen_once()
            except Exception as exc:
                if self.stopping.is_set():
                    return
                self.connected.clear()
                logger.error("worker connection lost (%s); reconnecting in %.1fs", exc, backoff)
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)  # back within the rescuer's grace

    def _listen_once(self) -> None:
        assert self.conn is not None
        control, jobs = control_channel(self.db.schema), jobs_channel(self.db.schema)
        for notify in self.conn.notifies(timeout=self.interval):
            if notify.channel == jobs:
                # Every notification wakes the consumer (setting a set event costs nothing):
                # it may have claimed and gone back to sleep since the previous one.
                if notify.payload in self.queues:
                    self.wake()
            elif notify.channel == control:
                self._control(notify.payload)
        if self.stopping.is_set():
            return
        if not self._heartbeat(self.conn):
            self.conn.close()  # releases the old id's lock; _run reconnects and re-registers
            self.conn = None

    def _control(self, payload: str) -> None:
        try:
            command = json.loads(payload)
        except ValueError:
            logger.warning("ignoring malformed control message %r", payload[:200])
            return
        try:
            self.on_control(command)
        except Exception:
            logger.exception("control command %r failed", command.get("command"))
