"""The claim loop: take as many due jobs as there are free slots, hand them to the pool,
sleep until woken (NOTIFY, a freed slot, the next eta) or the poll interval passes.
While jobs are short, the same claim also takes a few jobs ahead (worker/prefetch.py).

Claims rotate over the worker's queues so no queue starves. Per-task rate limits are a
token bucket per worker (as in Celery); a job over its rate is put back in the queue
with an eta instead of being held in memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.broker import Batch, Requeue
from celeriac.db.queries import query
from celeriac.message import Job
from celeriac.worker.executor import Outcome, untouched
from celeriac.worker.pool import BasePool
from celeriac.worker.prefetch import Prefetch


def started_mark(job: Job) -> Outcome:
    """The outcome that records a prefetched job as started (``mark_started``)."""
    mark = Outcome(job.id, job.attempt, job.task_id, job.task_name, "started", "STARTED")
    mark.store = False
    return mark


if TYPE_CHECKING:
    from celeriac.app import Celery

# an inline pool running its buffer asks whether the completer is behind every this many jobs
LOOK_BEHIND = 32

logger = logging.getLogger("celeriac.worker")


def parse_rate(rate: Any) -> float | None:
    """'100/s', '10/m', '1/h' or a number (per second) → tasks per second."""
    if rate is None or rate == "":
        return None
    if isinstance(rate, int | float):
        return float(rate) or None
    count, _, unit = str(rate).partition("/")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}.get(unit.strip()[:1])
    if per is None:
        raise ValueError(f"bad rate limit {rate!r}: use e.g. '10/s', '10/m' or '10/h'")
    value = float(count) / per
    return value or None


class TokenBucket:
    """Celery's per-worker rate limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = 1.0
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take a token; return 0, or the seconds to wait when none is left."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Consumer:
    """Claims jobs for the pool; runs in the worker's main thread."""

    def __init__(
        self,
        app: Celery,
        pool: BasePool,
        queues: list[str],
        hostname: str,
        worker_id: Callable[[], int],
        on_outcome: Callable[[Outcome], None],
        poll_interval: float,
        disable_rate_limits: bool = False,
        recording: Callable[[], set[int]] = set,
        prefetch_multiplier: int = 1,
        behind: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.pool = pool
        self.queues = list(queues)
        self.hostname = hostname
        self.worker_id = worker_id
        self.on_outcome = on_outcome
        self.poll_interval = poll_interval
        self.disable_rate_limits = disable_rate_limits
        self.recording = recording
        self.behind = behind  # too many outcomes wait to be written: start nothing new
        self.suspect = False  # a claim may have committed without us seeing its reply
        self.woken = threading.Event()
        # the last claim found nothing due and no job notification came since: a freed
        # slot alone then needs no claim (the next NOTIFY, eta or poll brings one)
        self.dry_since: float | None = None
        self.notified = 0  # job notifications (and other reasons to look) seen so far
        self.stopping = threading.Event()
        self.halted = False  # set by a signal handler: see halt()
        self.buckets: dict[str, TokenBucket | None] = {}
        self.conn: Any = None
        self.turn = 0
        self.next_eta: dt.datetime | None = None
        self.prefetch = Prefetch(lambda: self.pool.limit, prefetch_multiplier)

    def wake(self) -> None:
        """Look for jobs now: a NOTIFY of new jobs, a reconnect, a new queue."""
        self.notified += 1
        self.dry_since = None
        self.woken.set()

    def slot_freed(self) -> None:
        """A pool slot is free: claim for it, unless the queues were empty at the last
        claim and nothing was published since (every publish, retry and release
        NOTIFYs the queue). On an idle worker this saved two round trips after each
        job — the claim and the next-eta read — that raced the job's own result write."""
        self.woken.set()

    def stop(self) -> None:
        self.stopping.set()
        self.woken.set()

    def halt(self) -> None:
        """Claim and start nothing more; safe in a signal handler: a plain flag, no lock.
        (A handler runs between two bytecodes of the main thread, which runs this loop
        and may hold the lock inside ``woken`` or ``stopping`` at that moment: ``stop()``
        from a handler then waited for it forever.) ``stop()`` follows from a thread."""
        self.halted = True

    def stopped(self) -> bool:
        return self.halted or self.stopping.is_set()

    def run(self) -> None:
        backoff = 0.2
        while not self.stopped():
            try:
                self.step()
                backoff = 0.2
            except Exception as exc:
                if self.stopped():
                    break
                logger.error("consumer: cannot claim jobs (%s); retrying in %.1fs", exc, backoff)
                self.suspect = True
                self._reset()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.release_prefetched()
        self._reset()

    def release_prefetched(self) -> None:
        """Give prefetched jobs back to the queue, untouched (shutdown)."""
        for job in self.prefetch.drain():
            self.release(job)

    def give_back(self) -> None:
        """Jobs turned long: put the buffer back in the queue now, in this thread (so the
        next claim sees it), instead of letting it hold up older work queued since — such
        as a chord's callback — for as long as the buffered jobs take."""
        jobs = self.prefetch.drain()
        released = [Requeue(j.id, j.attempt, j.task_id, retry=False, store=False) for j in jobs]
        self.app.broker.commit(self._connection(), Batch(requeued=released), self.hostname, 0.0)

    def _connection(self) -> Any:
        if self.conn is None or self.conn.closed:
            conn = self.app.database.connect()
            try:
                self.app.broker.prepare_claims(conn)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn

    def _reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def step(self) -> None:
        self.woken.clear()
        if len(self.prefetch) and not self.prefetch.capacity():
            self.give_back()
        if self.behind():  # backpressure: the completer's next write wakes us
            self.woken.wait(self.poll_interval)
            return
        if self.pool.inline:
            self._run_buffer()
            free = 0 if len(self.prefetch) else self.pool.free_slots()
        else:
            free = self.pool.free_slots() - self._from_buffer(self.pool.room())  # idle left
        self.pool.flush()  # the pool works on these during the claim's round trip
        want = free + self.prefetch.room()
        if want <= 0 or self.stopped():
            self.woken.wait(self.poll_interval)
            return
        if self._still_dry():
            self.woken.wait(self._sleep_time(self.dry_since))
            return
        notified = self.notified
        now, ahead = self.claim(want, max(0, free))
        # a short claim took every job that was due: until a NOTIFY, the next eta or
        # the poll, the queues are dry (another claim for the slot this job frees would
        # find nothing: on an idle worker it raced the job's own result write)
        self.dry_since = None if len(now) + len(ahead) >= want else time.monotonic()
        if self.notified != notified:  # a NOTIFY came during the claim: look again
            self.dry_since = None
        for index, job in enumerate(now):
            if self.stopped():  # not started: released with the buffer
                ahead = now[index:] + ahead
                break
            self.dispatch(job)
        self.pool.flush()
        self.prefetch.put(ahead)
        if not now and not ahead:
            self.woken.wait(self._sleep_time())

    def _from_buffer(self, free: int) -> int:
        """Start prefetched jobs in free slots; the completer's next write marks them
        (prefork marks a job when it reaches the front of its child's queue instead)."""
        started = 0
        while started < free and not self.stopped():
            job = self.prefetch.take(self.pool.accepts)
            if job is None:
                break
            if not self.pool.marks_started:
                self.on_outcome(started_mark(job))
            self.dispatch(job)
            started += 1
        return started

    def _run_buffer(self) -> None:
        """An inline pool (solo) runs a job in this thread as it is dispatched: run the
        buffered jobs back to back, looking between two jobs only at what a job can
        change — a stop, jobs turning long (the next step gives the rest back), and,
        every ``LOOK_BEHIND`` jobs, the completer falling behind. One step per job cost a
        solo worker ~15 % of its CPU in a drain of no-op jobs (the checks and waits of
        a turn of the loop, for every job)."""
        ran = 0
        while len(self.prefetch) and not self.stopped() and self.prefetch.short():
            if ran % LOOK_BEHIND == LOOK_BEHIND - 1 and self.behind():
                return
            job = self.prefetch.take()
            if job is None:
                return
            self.on_outcome(started_mark(job))
            self.dispatch(job)
            ran += 1

    def mark_started(self, job: Job) -> None:
        """A prefetched job starts: its ``claimed_at`` is set with the next batch. A job
        the claim already started needs no mark: writing one cost every lone job on an
        idle worker a transaction ahead of its outcome (~1.5 ms of delay().get() here)."""
        if not job.started:
            self.on_outcome(started_mark(job))

    def claim(self, want: int, free: int) -> tuple[list[Job], list[Job]]:
        """Claim up to ``want`` jobs: the first ``free`` start now, the rest are prefetched."""
        self._connection()
        if self.suspect:
            self.reconcile()
        now: list[Job] = []
        ahead: list[Job] = []
        order = self.queues[self.turn :] + self.queues[: self.turn]
        self.turn = (self.turn + 1) % len(self.queues)
        etas: list[dt.datetime] = []
        for queue in order:
            start = max(0, free - len(now))
            got, later = self.app.broker.claim_due(
                self.conn, queue, want - len(now) - len(ahead), self.worker_id(), start
            )
            now += got[:start]
            ahead += got[start:]
            if len(now) + len(ahead) >= want:
                break
            if later is not None:
                etas.append(later)
        # short: every queue was tried and is dry (see step()); sleep until the earliest
        self.next_eta = min(etas, default=None)
        return now, ahead

    def reconcile(self) -> None:
        """Release jobs claimed for this worker that it never received (the claim's reply
        was lost with its connection). A job between the pool and the completer is in
        neither for a moment, so only jobs unaccounted for twice, a second apart, go."""
        first = self._strays()
        second = self._strays() if first and not self.stopping.wait(1.0) else set()
        for job_id, attempt, task_id, task_name in first & second:
            logger.warning(
                "Task %s[%s] was claimed for this worker but never received; releasing it",
                task_name,
                task_id,
                extra={"task_id": task_id, "task_name": task_name, "action": "released"},
            )
            outcome = Outcome(job_id, attempt, task_id, task_name, "requeue", "PENDING")
            outcome.store = outcome.retry = False
            self.on_outcome(outcome)
        self.suspect = False

    def _strays(self) -> set[tuple[int, int, str, str]]:
        rows = self.conn.execute(
            query("running_of_worker", self.app.database.schema),
            {"worker_id": self.worker_id()},
        ).fetchall()
        known = {slot.job.id for slot in self.pool.active()} | self.recording()
        known |= self.prefetch.ids()
        return {(r[0], r[1], r[2], r[3]) for r in rows if r[0] not in known}

    def _still_dry(self) -> bool:
        """Nothing can be due yet: the last claim found none, no NOTIFY since, the poll
        interval (the fallback for a missed notification) and the next eta not reached."""
        if self.dry_since is None:
            return False
        if time.monotonic() - self.dry_since >= self.poll_interval:
            return False
        return self.next_eta is None or self.next_eta > dt.datetime.now(dt.UTC)

    def _sleep_time(self, since: float | None = None) -> float:
        """Until the next eta or the next poll (counted from ``since``, default now)."""
        poll = self.poll_interval
        if since is not None:
            poll = max(0.0, since + poll - time.monotonic())
        if self.next_eta is None:
            return poll
        wait = (self.next_eta - dt.datetime.now(dt.UTC)).total_seconds()
        return max(0.0, min(poll, wait))

    def dispatch(self, job: Job) -> None:
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "Task %s[%s] received",
                job.task_name,
                job.task_id,
                extra={"task_id": job.task_id, "task_name": job.task_name, "action": "received"},
            )
        signals.task_received.send(sender=self, request=job)
        delay = self._rate_delay(job.task_name)
        if delay:
            self.release(job, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
            return
        try:
            self.pool.submit(job)
        except Exception as exc:
            logger.error("cannot start %s[%s] (%s); releasing it", job.task_name, job.task_id, exc)
            self.release(job)

    def release(self, job: Job, eta: dt.datetime | None = None) -> None:
        """Put a claimed job back in the queue untouched (at ``eta`` if given)."""
        self.on_outcome(untouched(job, eta))

    def _rate_delay(self, name: str) -> float:
        if self.disable_rate_limits:
            return 0.0
        if name not in self.buckets:
            task = self.app.tasks.get(name)
            rate = parse_rate(task.rate_limit) if task is not None else None
            self.buckets[name] = TokenBucket(rate) if rate else None
        bucket = self.buckets[name]
        return bucket.take() if bucket is not None else 0.0

    def set_rate_limit(self, name: str, rate: Any) -> None:
        parsed = parse_rate(rate)
        self.buckets[name] = TokenBucket(parsed) if parsed else None
