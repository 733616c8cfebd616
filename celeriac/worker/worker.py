"""The worker: start-up, the main loop, process signals, shutdown.

Signals (as Celery): TERM = warm shutdown (claim nothing new, finish what runs, exit 0);
INT once = warm, twice = cold; QUIT = cold shutdown (running acks_late jobs go back to
the queue, early-acknowledged ones end WorkerLostError; exit 1); HUP = warm shutdown
then restart in place (exec); USR1 = dump every thread's stack to stderr.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac import signals, states
from celeriac.config import as_seconds, mask_url, redact
from celeriac.db.queries import query
from celeriac.exceptions import (
    ImproperlyConfigured,
    OperationalError,
    Terminated,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.message import Job
from celeriac.worker import stacks
from celeriac.worker.completer import Completer
from celeriac.worker.consumer import Consumer
from celeriac.worker.control import Panel
from celeriac.worker.executor import Execution, Outcome
from celeriac.worker.listener import Listener
from celeriac.worker.lost import lost
from celeriac.worker.maintenance import Maintenance, liveness_namespace
from celeriac.worker.pool import POOL_NAMES, BasePool, pool_class
from celeriac.worker.pool import cold_shutdown_error as pool_cold_error

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker")

T = TypeVar("T")

EX_OK, EX_FAILURE = 0, 1
SHUTDOWN_FLUSH = 30.0  # seconds to keep retrying outcome writes at shutdown


def expand_hostname(name: str | None) -> str:
    """Celery's node name: %h host, %n name part of host, %d domain; default celery@%h."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = name or "celery@%h"
    name = name.replace("%h", host).replace("%n", short).replace("%d", domain).replace("%%", "%")
    return name if "@" in name else f"{name}@{host}"


class Worker:
    """A celeriac worker node."""

    def __init__(
        self,
        app: Celery,
        hostname: str | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        queues: list[str] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        prefetch_multiplier: int | None = None,
        argv: list[str] | None = None,
        autoscale: tuple[int, int] | None = None,
        **options: Any,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = expand_hostname(hostname)
        self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 1)
        self.pool_name = pool or conf.worker_pool or "prefork"
        if self.pool_name not in POOL_NAMES:
            raise ImproperlyConfigured(
                f"unknown pool {self.pool_name!r}: use one of prefork, threads, solo"
            )
        if self.pool_name == "solo":
            self.concurrency = 1
        if autoscale and self.pool_name in ("prefork", "processes"):
            self.concurrency = autoscale[1] or 1
        self.queues = queues or [conf.task_default_queue]
        self.time_limit = time_limit if time_limit is not None else None
        self.soft_time_limit = soft_time_limit
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child or conf.worker_max_memory_per_child
        self.prefetch_multiplier = prefetch_multiplier or conf.worker_prefetch_multiplier
        self.argv = argv
        self.result_expires = as_seconds(conf.result_expires) or 10 * 365 * 86400.0
        self.shutdown_mode: str | None = None
        self.cold = threading.Event()
        self.cold_signalled = False  # by a handler, before the signals thread sets cold
        self.int_count = 0
        self.worker_id = 0
        self.started_at = dt.datetime.now(dt.UTC)
        self.processed = 0
        self.totals: Counter[str] = Counter()
        self.autoscale = autoscale
        self.autoscaler: Any = None
        self.panel = Panel(self)
        self.lock = threading.Lock()
        self.pool: BasePool
        self.exit_code = EX_OK

    # -- start-up ---------------------------------------------------------------------------
    def start(self) -> int:
        """Run until shut down; return the exit code."""
        app = self.app
        signals.celeryd_init.send(sender=self.hostname, instance=self, conf=app.conf, options={})
        app.import_default_modules()
        app.finalize()
        for db in {
            id(app.database): app.database,
            id(app.result_database): app.result_database,
        }.values():
            db.check_connections = True  # sessions may be cut under a long-lived worker
        self._until_reachable(app.ensure_schema)
        signals.worker_init.send(sender=self)
        self.worker_id = self._until_reachable(self.register)
        if app.conf.get("worker_send_task_events"):
            from celeriac.events import EventRecorder

            EventRecorder(app, self.hostname).connect()
        self.completer = Completer(
            app.broker, app.database, self.hostname, self.result_expires, app.backend
        )
        if app.conf.task_send_sent_event:
            from celeriac.events import record_sent

            self.completer.sent = functools.partial(record_sent, app)
        self.pool = pool_class(self.pool_name)(
            app,
            self.concurrency,
            self.hostname,
            on_outcome=self.on_outcome,
            on_outcomes=self.on_outcomes,
            on_lost=self.on_lost,
            on_free=lambda: self.consumer.slot_freed(),
            time_limit=self.time_limit,
            soft_time_limit=self.soft_time_limit,
            max_tasks_per_child=self.max_tasks_per_child,
            max_memory_per_child=self.max_memory_per_child,
            depth=lambda: self.consumer.prefetch.depth(),
            cost=lambda task_name: self.consumer.prefetch.cost(task_name),
            on_started=lambda job: self.consumer.mark_started(job),
            on_release=lambda job: self.consumer.release(job),
        )
        self.consumer = Consumer(
            app,
            self.pool,
            self.queues,
            self.hostname,
            lambda: self.worker_id,
            self.completer.add,
            float(app.conf.worker_poll_interval),
            bool(app.conf.worker_disable_rate_limits),
            recording=self.completer.job_ids,
            prefetch_multiplier=int(self.prefetch_multiplier or 1),
            behind=self.completer.behind,
        )
        self.completer.written = self.consumer.slot_freed
        if self.pool.name == "threads":  # (prefork's reader gathers outcomes itself)
            self.completer.gather = lambda: bool(self.pool.running)
        self.listener = Listener(
            app.database,
            self.worker_id,
            liveness_namespace(app.database.schema),
            self.queues,
            self.consumer.wake,
            self.on_control,
            float(app.conf.worker_heartbeat_interval),
            self.stats,
            self.register_again,
        )
        self._until_reachable(self.listener.connect)
        self.install_signal_handlers()
        self.pool.start()  # fork children after the listener connected: they abandon it
        self.completer.start()
        self.listener.start()
        self.maintenance = Maintenance(
            app,
            self.hostname,
            float(app.conf.worker_heartbeat_interval),
            float(app.conf.worker_lost_timeout),
            self.result_expires,
        )
        self.maintenance.start()
        self.start_autoscaler()
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=app.conf)
        self.banner()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)
        self.consumer.run()
        self.signals_handled_wait()
        return self.shutdown()

    def start_autoscaler(self) -> None:
        from celeriac.worker.autoscale import Autoscaler
        from celeriac.worker.prefork import PreforkPool

        if self.autoscale and isinstance(self.pool, PreforkPool):
            self.autoscaler = Autoscaler(
                self.pool, self.autoscale[0], self.autoscale[1], self._waiting
            )
            self.autoscaler.start()

    def _waiting(self, limit: int) -> int:
        db = self.app.database
        with db.connection() as conn:
            row = conn.execute(
                query("due_jobs", db.schema), {"queues": self.consumer.queues, "limit": limit}
            ).fetchone()
        return int(row[0]) if row else 0

    def _until_reachable(self, step: Callable[[], T]) -> T:
        """Run a start-up step, retrying with backoff while PostgreSQL is unreachable
        (Celery's ``broker_connection_retry_on_startup``, ``broker_connection_max_retries``).

        Only a server that cannot be reached (refused, timed out, starting up) is waited
        for; a server that answers "no" (too many clients, authentication, no such
        database) is a clear error at once — retrying would not change its mind."""
        conf = self.app.conf
        retry = conf.get("broker_connection_retry_on_startup")
        if retry is None:
            retry = conf.get("broker_connection_retry", True)
        limit = int(conf.get("broker_connection_max_retries") or 0)  # 0: forever
        delay, attempt = 1.0, 0
        while True:
            try:
                return step()
            except OperationalError as exc:
                attempt += 1
                if not retry or (limit and attempt > limit) or not _unreachable(exc):
                    raise
                logger.error(
                    "worker: %s; retry %d%s in %.0fs",
                    exc,
                    attempt,
                    f"/{limit}" if limit else "",
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def register_again(self, old_id: int, adopt: bool) -> int:
        """A new registration after a connection cut; ``adopt`` moves the old id's running
        jobs to the new id (its stale session still holds the old lock) and stops it."""
        new_id = self.register()
        if adopt:
            db = self.app.database
            with db.connection() as conn:
                conn.execute(query("adopt_worker", db.schema), {"old_id": old_id, "new_id": new_id})
        return new_id

    def register(self) -> int:
        """Add this worker's row; refuse a second live worker with the same name."""
        db = self.app.database
        with db.connection() as conn:
            live = conn.execute(
                query("live_worker_named", db.schema),
                {"name": self.hostname, "lock_ns": liveness_namespace(db.schema)},
            ).fetchone()
            ours = live is not None and live[1] == os.getpid() and live[2] == socket.gethostname()
            if live is not None and not ours:  # ours: registering again after a cut
                raise ImproperlyConfigured(
                    f"a worker named {self.hostname!r} is already running (pid {live[1]} on "
                    f"{live[2]}); give this one another name with -n, e.g. -n worker2@%h"
                )
            row = conn.execute(
                query("register_worker", db.schema),
                {
                    "name": self.hostname,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "pool": self.pool_name,
                    "concurrency": self.concurrency,
                    "queues": self.queues,
                    "info": json.dumps({"argv": [redact(arg) for arg in self.argv or sys.argv]}),
                },
            ).fetchone()
        assert row is not None
        self.worker_id = int(row[0])
        return self.worker_id

    def banner(self) -> None:
        app = self.app
        tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
        lines = [
            f" -------------- {self.hostname} v{_version()} (celeriac)",
            f"--- ***** ----- {dt.datetime.now():%Y-%m-%d %H:%M:%S}",
            f"- *** --- * --- .> app:         {app.main or '__main__'}:{id(app):#x}",
            f"- ** ---------- .> transport:   {mask_url(app.database.url)} "
            f"(schema {app.database.schema})",
            f"- ** ---------- .> results:     {mask_url(app.result_database.url)}",
            f"- *** --- * --- .> concurrency: {self.concurrency} ({self.pool_name})",
            f"-- ******* ---- .> queues:      {', '.join(self.queues)}",
            "",
            "[tasks]",
            *(f"  . {name}" for name in tasks),
            "",
        ]
        print("\n".join(lines), file=sys.stderr, flush=True)

    # -- outcomes ----------------------------------------------------------------------------
    def on_outcome(self, outcome: Outcome) -> None:
        self.on_outcomes([outcome])

    def on_outcomes(self, outcomes: list[Outcome]) -> None:
        with self.lock:
            for outcome in outcomes:
                # a task processed (``inspect stats``): a job that ended or is retried,
                # not a started mark nor a job given back untouched (these counted too,
                # so a solo or threads worker with a buffer counted most jobs twice)
                if outcome.kind == "finish" or (outcome.kind == "requeue" and outcome.retry):
                    self.processed += 1
                    self.totals[outcome.task_name] += 1
        for outcome in outcomes:
            if outcome.runtime > 0:  # a run, not a started mark, a release or a lost job
                self.consumer.prefetch.observe(outcome.runtime, outcome.task_name)
        self.completer.add(*outcomes)

    def on_lost(self, job: Job, exc: BaseException) -> None:
        """A job's process died, hit its hard limit, or was terminated."""
        if isinstance(exc, Terminated):
            from celeriac.exceptions import TaskRevokedError

            execution = Execution(self.app, job, self.hostname)
            outcome = execution.finished(states.REVOKED, TaskRevokedError("terminated"))
            signals.task_revoked.send(
                sender=self.app.tasks.get(job.task_name),
                request=job,
                terminated=True,
                signum=exc.args[0] if exc.args else None,
                expired=False,
            )
        else:
            if isinstance(exc, TimeLimitExceeded):
                logger.error("Task %s[%s] raised: %r", job.task_name, job.task_id, exc)
            else:
                logger.error("Task %s[%s] lost: %s", job.task_name, job.task_id, exc)
            # cut off by a cold shutdown, an acks_late job was never acknowledged: it goes
            # back to the queue as if the whole worker had died
            cold = self.cold_signalled or self.cold.is_set()
            whole = cold and isinstance(exc, WorkerLostError)
            outcome = lost(self.app, job, self.hostname, exc, whole_worker=whole)
        self.on_outcome(outcome)

    # -- remote control (commands and replies: worker/control.py) ------------------------------
    def on_control(self, command: dict[str, Any]) -> None:
        if command.get("command") == "revoke":  # claimed jobs not started yet are refused
            fields = command.get("arguments") or command  # (the durable NOTIFY: inline)
            ids = list(fields.get("task_ids") or [])
            self.consumer.prefetch.revoke(ids)
            self.pool.revoke(ids)
        self.panel.handle(command)

    def stats(self) -> dict[str, Any]:
        return {"processed": self.processed, "active": len(self.pool.active())}

    # -- signals and shutdown ---------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """TERM warm, INT warm then cold, QUIT cold, HUP restart, USR1 stacks.

        A handler only queues the signal (``SimpleQueue.put`` is reentrant) and sets
        lock-free flags; the ``celeriac-signals`` thread does the rest. A handler runs
        between two bytecodes of the main thread, which runs the claim loop: when it held
        the lock inside one of the loop's events at that moment (or a first handler did,
        for a second INT), a handler that set that event waited for it forever, and the
        worker never exited (seen as a flaky TERM test and a wedged double INT)."""
        self.start_signal_thread()
        signal.signal(signal.SIGTERM, lambda s, f: self._on_signal("warm"))
        signal.signal(signal.SIGINT, self._on_int)
        signal.signal(signal.SIGQUIT, lambda s, f: self._on_signal("cold"))
        signal.signal(signal.SIGHUP, lambda s, f: self._on_signal("restart"))
        stacks.install()

    def start_signal_thread(self) -> None:
        """The thread that acts on the signals the handlers queue."""
        self.signal_queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.signals_sent = 0  # by the handlers (main thread)
        self.signals_handled = 0  # by the signals thread, under signals_done
        self.signals_done = threading.Condition()
        threading.Thread(target=self._handle_signals, name="celeriac-signals", daemon=True).start()

    def _on_int(self, signum: int, frame: Any) -> None:
        self.int_count += 1
        self._on_signal("int" if self.int_count == 1 else "cold")

    def _on_signal(self, mode: str) -> None:
        """The handler's part: no lock taken, nothing that can wait."""
        self.signals_sent += 1
        self.signal_queue.put(mode)
        self.consumer.halt()
        if mode == "cold":
            self.cold_signalled = True  # read by on_lost for the job interrupted next
            self.pool.interrupt()  # solo: raises out of the running task (this thread)

    def _handle_signals(self) -> None:
        while True:
            mode = self.signal_queue.get()
            try:
                if mode == "int":
                    print(
                        "worker: Hitting Ctrl+C again will initiate cold shutdown, "
                        "terminating all running tasks!",
                        file=sys.stderr,
                        flush=True,
                    )
                    mode = "warm"
                self.request_shutdown(mode)
            except Exception:
                logger.exception("worker: cannot act on a %s signal", mode)
            finally:
                with self.signals_done:
                    self.signals_handled += 1
                    self.signals_done.notify_all()

    def signals_handled_wait(self) -> None:
        """Wait until the signals thread has acted on every signal received so far (the
        claim loop stops at once on a signal; the shutdown it asked for is known after).
        The queue is looked at too: a signal landing inside another handler's
        ``signals_sent += 1`` could leave that count one short."""

        def handled() -> bool:
            return self.signal_queue.empty() and self.signals_handled >= self.signals_sent

        with self.signals_done:
            self.signals_done.wait_for(handled, 10)

    def request_shutdown(self, mode: str) -> None:
        """Start a ``warm``, ``cold`` or ``restart`` shutdown (the signals thread, or the
        listener for a remote ``shutdown``). Never from a signal handler: this takes locks.

        Only flags are set here: the main thread does the work once the claim loop (or,
        for solo, the task) returns."""
        if self.cold.is_set() or (mode != "cold" and self.shutdown_mode is not None):
            return  # a second TERM changes nothing; cold is final
        how = "Cold" if mode == "cold" else "Warm"
        logger.warning(
            "worker: %s shutdown (MainProcess)%s",
            how,
            ": restarting in place once running tasks finish" if mode == "restart" else "",
        )
        code = EX_FAILURE if mode == "cold" else EX_OK
        signals.worker_shutting_down.send(sender=self.hostname, sig=mode, how=how, exitcode=code)
        self.shutdown_mode = mode
        self.consumer.stop()
        if mode == "cold":
            self.cold.set()
            self.pool.interrupt()  # solo: raises out of the running task (main thread)

    def shutdown(self) -> int:
        """After the claim loop: stop the pool (warm unless cold), record, exit or exec."""
        if not self.cold.is_set():
            self.pool.stop(cold=False, abort=self.cold)
        code = EX_FAILURE if self.cold.is_set() else EX_OK
        if code != EX_OK:
            for job in self.pool.stop(cold=True):
                self.on_lost(job, pool_cold_error(job))
        self._finish()
        if code == EX_OK and self.shutdown_mode == "restart":
            self._restart()
        return code

    def _restart(self) -> None:
        argv = [a for a in sys.argv[1:] if a not in ("-D", "--detach")]
        logger.warning("Restarting celeriac worker (%s)", redact(" ".join(argv)))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "celeriac", *argv])

    def _finish(self) -> None:
        if self.autoscaler is not None:
            self.autoscaler.stop()
        if not self.completer.stop(timeout=SHUTDOWN_FLUSH):
            logger.error(
                "worker: could not record every outcome within %ss (database unreachable?); "
                "their jobs stay claimed and are rescued once this worker is gone",
                SHUTDOWN_FLUSH,
            )
        self.maintenance.stop()
        self.listener.stop()
        try:
            with self.app.database.connection() as conn:
                conn.execute(
                    query("stop_worker", self.app.database.schema), {"worker_id": self.worker_id}
                )
        except Exception as exc:
            logger.warning("could not mark worker stopped: %s", exc)
        signals.worker_shutdown.send(sender=self)


UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "timed out",
    "no route to host",
    "network is unreachable",
    "starting up",
    "shutting down",
    "closed the connection unexpectedly",
    "connection reset",
)


def _unreachable(exc: Exception) -> bool:
    """Does this connection error mean the server is not there (yet)?"""
    message = str(exc).lower()
    return any(text in message for text in UNREACHABLE)


def _version() -> str:
    from celeriac import __version__

    return __version__
