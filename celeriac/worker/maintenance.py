"""Maintenance, run by one leader among the live workers at a time.

Each round (every heartbeat interval) a worker tries a transaction-level advisory
lock; the one that gets it rescues the jobs of dead workers and every minute prunes
expired results, revoked ids and long-stopped workers; it VACUUMs ``jobs`` and
``results`` once their dead rows pass ``celeriac_vacuum_threshold``. A worker is dead when its
liveness lock is gone and it has not heartbeated for two intervals (a worker whose
session was merely cut reconnects and heartbeats within that grace), or when its
heartbeat is older than ``worker_lost_timeout`` — and the leader itself has reached the
database for that grace. After its own connection was lost it waits RESET_GRACE more: if
the server reset every session (a restart, or a crashed backend), every other worker is
reconnecting too, with a backoff of up to 2 s, and a missing lock means nothing yet.
Rescue is fenced like any outcome: the rescuer records through the same SQL as the
worker would.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from psycopg import sql

from celeriac.db.pool import is_connection_error
from celeriac.db.queries import query
from celeriac.exceptions import WorkerLostError
from celeriac.message import Job
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import untouched
from celeriac.worker.lost import lost

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)

PRUNE_EVERY = 60.0
VACUUM_CHECK_EVERY = 10.0
CHURNING = ["jobs", "results"]  # every task leaves dead rows in both
BATCH = 1000
RESET_GRACE = 10.0  # seconds for others to reconnect after every session was reset


def leader_key(schema: str) -> int:
    return zlib.crc32(f"celeriac-maintenance:{schema}".encode()) & 0x7FFFFFFF


def liveness_namespace(schema: str) -> int:
    """The first key of workers' liveness locks (the second is the worker id)."""
    return zlib.crc32(f"celeriac-worker:{schema}".encode()) & 0x7FFFFFFF


class Maintenance:
    """The maintenance thread of one worker."""

    def __init__(
        self,
        app: Celery,
        hostname: str,
        interval: float,
        lost_timeout: float,
        result_expires: float,
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.interval = interval
        self.lost_timeout = lost_timeout
        self.result_expires = result_expires
        self.stopping = threading.Event()
        self.last_prune = 0.0
        self.last_vacuum_check = 0.0
        self.vacuum_threshold = int(app.conf.celeriac_vacuum_threshold or 0)
        self.healthy_since = 0.0  # when self.conn connected
        self.wait = 0.0  # how long after that it judges others
        self.conn: Any = None
        self.thread = threading.Thread(target=self._run, name="celeriac-maintenance", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self._drop()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self.app.database.connect(connect_timeout=10)
                    self.healthy_since = time.monotonic()
                # Judge others only after being connected for a grace ourselves: after an
                # outage (or at start) every worker needs a moment to reconnect, re-take
                # its liveness lock and heartbeat before its absence means anything.
                trusted = time.monotonic() - self.healthy_since >= self.grace + self.wait
                self.round(rescue=trusted, conn=self.conn)
            except Exception as exc:
                if is_connection_error(exc):
                    self.wait = RESET_GRACE
                self._drop()
                logger.warning("maintenance round failed: %s", exc)
            self.stopping.wait(self.interval)

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    @property
    def grace(self) -> float:
        """How long a worker without its liveness lock may take to come back."""
        return 2 * self.interval

    def round(self, rescue: bool = True, conn: Any = None) -> int:
        """One maintenance round (on ``conn``, else a pooled one); returns how many jobs
        were rescued."""
        if conn is None:
            with self.app.database.connection() as pooled:
                return self._round(pooled, rescue)
        return self._round(conn, rescue)

    def _round(self, conn: Any, rescue: bool) -> int:
        schema = self.app.database.schema
        with conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (leader_key(schema),))
            row = got.fetchone()
            if not row or not row[0]:
                return 0
            rescued = self.rescue(conn) if rescue else 0
        # Pruning runs after the leader's transaction, one commit per batch: in a single
        # transaction every batch's index scan stepped over all the rows deleted before
        # it (not yet dead to anyone), so pruning n results cost O(n²) — 18 minutes for a
        # million here — with the leader lock (hence rescue) and the xmin horizon held.
        if time.monotonic() - self.last_prune > PRUNE_EVERY:
            self.prune(conn)
            self.last_prune = time.monotonic()
        if self.vacuum_threshold and time.monotonic() - self.last_vacuum_check > VACUUM_CHECK_EVERY:
            self.vacuum(conn)
            self.last_vacuum_check = time.monotonic()
        return rescued

    def rescue(self, conn: Any) -> int:
        schema = self.app.database.schema
        dead = conn.execute(
            query("find_dead_workers", schema),
            {
                "lost_timeout": self.lost_timeout,
                "grace": self.grace,
                "reset_grace": RESET_GRACE,
                "lock_ns": liveness_namespace(schema),
            },
        ).fetchall()
        for worker_id, name in dead:
            logger.warning("worker %s (id %s) is gone; rescuing its jobs", name, worker_id)
        rows = conn.execute(query("orphaned_jobs", schema), {"limit": BATCH}).fetchall()
        if not rows:
            return 0
        jobs = [Job.from_row(row) for row in rows]
        unstarted = _unstarted(conn, schema, jobs)
        outcomes = [
            untouched(job)  # prefetched by the dead worker, never started
            if job.id in unstarted
            else lost(
                self.app,
                job,
                self.hostname,
                WorkerLostError(
                    f"Worker exited prematurely: the worker running it is gone. Job: {job.task_id}."
                ),
                whole_worker=True,
            )
            for job in jobs
        ]
        self.app.broker.commit(conn, to_batch(outcomes), self.hostname, self.result_expires)
        requeued = sum(1 for o in outcomes if o.kind == "requeue")
        logger.warning(
            "rescued %d job(s): %d queued again, %d failed with WorkerLostError",
            len(jobs),
            requeued,
            len(jobs) - requeued,
        )
        return len(jobs)

    def prune(self, conn: Any) -> None:
        """Delete expired results (a transaction per batch on the autocommit ``conn``),
        expired revokes, long-stopped workers and abandoned chords."""
        schema = self.app.database.schema
        total = 0
        while True:
            row = conn.execute(query("prune_results", schema), {"limit": BATCH}).fetchone()
            count = int(row[0]) if row else 0
            total += count
            if count < BATCH:
                break
        conn.execute(query("prune_revoked", schema))
        conn.execute(query("prune_workers", schema))
        conn.execute(query("prune_chords", schema), {"expires": self.result_expires})
        if total:
            logger.info("pruned %d expired result(s)", total)

    def vacuum(self, conn: Any) -> list[str]:
        """VACUUM the churning tables with at least ``vacuum_threshold`` dead rows (on the
        autocommit ``conn``); returns their names. Each claimed job leaves dead entries
        at the front of the claim index until a VACUUM: without one the claim reads ever
        more index pages (bench/README.md, load), and autovacuum may be off or slow."""
        schema = self.app.database.schema
        rows = conn.execute(
            query("dead_rows", schema), {"schema": schema, "tables": CHURNING}
        ).fetchall()
        done = []
        for name, dead in rows:
            if dead >= self.vacuum_threshold:
                began = time.monotonic()
                conn.execute(
                    sql.SQL("VACUUM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                )
                logger.info(
                    "vacuumed %s (%d dead rows) in %.1f s", name, dead, time.monotonic() - began
                )
                done.append(str(name))
        return done


def _unstarted(conn: Any, schema: str, jobs: list[Job]) -> set[int]:
    """Ids of prefetched jobs that never started (worker/prefetch.py)."""
    rows = conn.execute(query("unstarted", schema), {"job_ids": [job.id for job in jobs]})
    return {row[0] for row in rows.fetchall()}
