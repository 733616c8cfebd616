"""Maintenance, run by one leader among the live workers at a time.

Each round (every heartbeat interval) a worker tries a transaction-level advisory
lock; the one that gets it rescues the jobs of dead workers and every minute prunes
expired results, revoked ids and long-stopped workers. A worker is dead when its
liveness lock is gone and it has not heartbeated for two intervals (a worker whose
session was merely cut reconnects and heartbeats within that grace), or when its
heartbeat is older than ``worker_lost_timeout``. Rescue is fenced like any
outcome: the rescuer records through the same SQL as the worker would.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from celeriac.db.queries import query
from celeriac.exceptions import WorkerLostError
from celeriac.message import Job
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Outcome
from celeriac.worker.lost import lost

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)

PRUNE_EVERY = 60.0
BATCH = 1000


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
        self.thread = threading.Thread(target=self._run, name="celeriac-maintenance", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.round()
            except Exception as exc:
                logger.warning("maintenance round failed: %s", exc)
            self.stopping.wait(self.interval)

    def round(self) -> int:
        """One maintenance round; returns how many jobs were rescued."""
        db = self.app.database
        schema = db.schema
        with db.connection() as conn, conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (leader_key(schema),))
            row = got.fetchone()
            if not row or not row[0]:
                return 0
            rescued = self.rescue(conn)
            if time.monotonic() - self.last_prune > PRUNE_EVERY:
                self.prune(conn)
                self.last_prune = time.monotonic()
        return rescued

    def rescue(self, conn: Any) -> int:
        schema = self.app.database.schema
        dead = conn.execute(
            query("find_dead_workers", schema),
            {
                "lost_timeout": self.lost_timeout,
                "grace": 2 * self.interval,
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
            _never_started(job)
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


def _unstarted(conn: Any, schema: str, jobs: list[Job]) -> set[int]:
    """Ids of prefetched jobs that never started (worker/prefetch.py)."""
    rows = conn.execute(query("unstarted", schema), {"job_ids": [job.id for job in jobs]})
    return {row[0] for row in rows.fetchall()}


def _never_started(job: Job) -> Outcome:
    """A prefetched job of a dead worker goes back to the queue untouched."""
    return Outcome(
        job.id,
        job.attempt,
        job.task_id,
        job.task_name,
        "requeue",
        "PENDING",
        store=False,
        retry=False,
    )
