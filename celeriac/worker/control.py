"""The worker's remote-control panel: runs commands that arrive by NOTIFY and writes the
replies to ``control_replies`` (see ``celeriac.control``). Reply shapes are Celery's.

Commands run on the listener thread, so each handler is quick: it reads the worker's
state or flips a setting; shutdown only requests it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.control import reply_channel
from celeriac.db.queries import query
from celeriac.message import Job, decode_body
from celeriac.worker.consumer import parse_rate

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

logger = logging.getLogger(__name__)

Handler = Callable[["Panel", dict[str, Any]], Any]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    def register(fun: Handler) -> Handler:
        HANDLERS[name] = fun
        return fun

    return register


def to_signum(name: Any) -> int:
    """``'SIGTERM'``, ``'TERM'``, ``'term'`` or ``15`` → 15."""
    if isinstance(name, int):
        return name
    text = str(name).upper()
    if text.isdigit():
        return int(text)
    return int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))


class Panel:
    """Dispatches control commands for one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app

    def handle(self, command: dict[str, Any]) -> None:
        """Run ``command`` if it is meant for this worker; reply when asked."""
        destination = command.get("destination")
        if destination and self.worker.hostname not in destination:
            return
        name = str(command.get("command"))
        fun = HANDLERS.get(name)
        arguments = dict(command.get("arguments") or {})
        if "arguments" not in command:  # the durable-revoke NOTIFY carries its fields inline
            arguments = {k: v for k, v in command.items() if k != "command"}
        try:
            reply = fun(self, arguments) if fun else {"error": f"No such control command: {name}"}
        except Exception as exc:
            logger.exception("control command %s failed", name)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if command.get("reply") and command.get("id"):
            self.reply(str(command["id"]), reply)

    def reply(self, request_id: str, reply: Any) -> None:
        db = self.app.database
        with db.connection() as conn:
            conn.execute(
                query("insert_reply", db.schema),
                {
                    "request_id": request_id,
                    "node": self.worker.hostname,
                    "reply": json.dumps(reply, default=str),
                    "channel": reply_channel(db.schema),
                },
            )

    # helpers --------------------------------------------------------------------------------
    def request_info(self, job: Job, started: float | None = None, pid: int | None = None) -> Any:
        """Celery's ``Request.info()`` for a job."""
        try:
            body = decode_body(job, self.app.accept_content)
            args, kwargs = body.args, body.kwargs
        except Exception:
            args, kwargs = [], {}
        return {
            "id": job.task_id,
            "name": job.task_name,
            "args": args,
            "kwargs": kwargs,
            "type": job.task_name,
            "hostname": self.worker.hostname,
            "time_start": started,
            "acknowledged": not job.acks_late,
            "delivery_info": {
                "exchange": "",
                "routing_key": job.queue,
                "priority": job.priority,
                "redelivered": job.attempt > 1,
            },
            "worker_pid": pid,
        }

    def active_infos(self) -> list[Any]:
        wall = time.time() - time.monotonic()
        return [
            self.request_info(slot.job, wall + slot.started, slot.pid)
            for slot in self.worker.pool.active()
            if not slot.queued
        ]

    def reserved_infos(self) -> list[Any]:
        """Claimed jobs not started yet: the worker's buffer (worker/prefetch.py), then the
        jobs queued in a prefork process behind the one it runs (``worker_pid`` is that
        process: a revoke still reaches them)."""
        buffered = [self.request_info(job) for job in self.worker.consumer.prefetch.snapshot()]
        queued = [
            self.request_info(slot.job, None, slot.pid)
            for slot in self.worker.pool.active()
            if slot.queued
        ]
        return buffered + queued

    def scheduled_infos(self, limit: int = 1000) -> list[Any]:
        db = self.app.database
        with db.connection() as conn:
            rows = conn.execute(
                query("scheduled_jobs", db.schema),
                {"queues": self.worker.consumer.queues, "limit": limit},
            ).fetchall()
        infos = []
        for task_id, name, queue, priority, eta, headers, content_type, body in rows:
            job = Job(
                0, 0, task_id, name, queue, priority, eta, None, 0, False, False,
                content_type, headers, bytes(body),
            )  # fmt: skip
            infos.append(
                {"eta": eta.isoformat(), "priority": priority, "request": self.request_info(job)}
            )
        return infos


# -- inspect -----------------------------------------------------------------------------------
@handler("ping")
def _ping(panel: Panel, args: dict[str, Any]) -> Any:
    return {"ok": "pong"}


@handler("active")
def _active(panel: Panel, args: dict[str, Any]) -> Any:
    return panel.active_infos()


@handler("reserved")
def _reserved(panel: Panel, args: dict[str, Any]) -> Any:
    return panel.reserved_infos()


@handler("scheduled")
def _scheduled(panel: Panel, args: dict[str, Any]) -> Any:
    return panel.scheduled_infos()


@handler("registered")
def _registered(panel: Panel, args: dict[str, Any]) -> Any:
    items = args.get("taskinfoitems") or []
    names = sorted(name for name in panel.app.tasks if not name.startswith("celery."))
    if not items:
        return names
    out = []
    for name in names:
        task = panel.app.tasks[name]
        fields = [f"{item}={getattr(task, item, None)}" for item in items]
        out.append(f"{name} [{' '.join(fields)}]")
    return out


@handler("stats")
def _stats(panel: Panel, args: dict[str, Any]) -> Any:
    worker = panel.worker
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pool = worker.pool
    return {
        "pid": os.getpid(),
        "clock": 0,
        "uptime": int((dt.datetime.now(dt.UTC) - worker.started_at).total_seconds()),
        "total": dict(worker.totals),
        "pool": {
            "implementation": pool.name,
            "max-concurrency": pool.limit,
            "processes": sorted({slot.pid for slot in pool.active()}),
            "timeouts": [pool.soft_time_limit or 0, pool.time_limit or 0],
        },
        "broker": {"transport": "postgresql", "schema": panel.app.database.schema},
        "prefetch_count": worker.prefetch_multiplier * pool.limit,
        "rusage": {"utime": usage.ru_utime, "stime": usage.ru_stime, "maxrss": usage.ru_maxrss},
    }


@handler("active_queues")
def _active_queues(panel: Panel, args: dict[str, Any]) -> Any:
    return [
        {
            "name": queue,
            "exchange": {"name": queue, "type": "direct"},
            "routing_key": queue,
            "durable": True,
            "auto_delete": False,
            "no_ack": False,
        }
        for queue in panel.worker.consumer.queues
    ]


@handler("revoked")
def _revoked(panel: Panel, args: dict[str, Any]) -> Any:
    db = panel.app.database
    with db.connection() as conn:
        return [row[0] for row in conn.execute(query("list_revoked", db.schema)).fetchall()]


@handler("query_task")
def _query_task(panel: Panel, args: dict[str, Any]) -> Any:
    wanted = set(args.get("ids") or [])
    found: dict[str, Any] = {}
    for info in panel.active_infos():
        if info["id"] in wanted:
            found[info["id"]] = ["active", info]
    for info in panel.reserved_infos():
        if info["id"] in wanted:
            found[info["id"]] = ["reserved", info]
    for entry in panel.scheduled_infos():
        if entry["request"]["id"] in wanted:
            found[entry["request"]["id"]] = ["scheduled", entry["request"]]
    return found


@handler("conf")
def _conf(panel: Panel, args: dict[str, Any]) -> Any:
    from celeriac.config import DEFAULTS, mask_url

    conf = panel.app.conf
    keys = conf if args.get("with_defaults") else [k for k in conf if conf[k] != DEFAULTS.get(k)]
    out = {k: conf[k] for k in keys}
    for key in ("broker_url", "result_backend"):
        if out.get(key):
            out[key] = mask_url(str(out[key]))
    return json.loads(json.dumps(out, default=repr))


# -- control -----------------------------------------------------------------------------------
@handler("revoke")
def _revoke(panel: Panel, args: dict[str, Any]) -> Any:
    ids = list(args.get("task_ids") or [])
    if args.get("terminate"):
        signum = to_signum(args.get("signal") or "SIGTERM")
        for task_id in ids:
            if panel.worker.pool.terminate(task_id, signum):
                logger.info("Terminating %s (%s)", task_id, signal.Signals(signum).name)
    return {"ok": f"tasks {', '.join(ids)} flagged as revoked"}


@handler("rate_limit")
def _rate_limit(panel: Panel, args: dict[str, Any]) -> Any:
    name, rate = args.get("task_name"), args.get("rate_limit")
    task = panel.app.tasks.get(str(name))
    if task is None:
        return {"error": f"unknown task {name}"}
    try:
        parse_rate(rate)
    except ValueError as exc:
        return {"error": str(exc)}
    task.rate_limit = rate
    panel.worker.consumer.set_rate_limit(task.name, rate)
    return {"ok": "new rate limit set successfully" if rate else "rate limit disabled successfully"}


@handler("time_limit")
def _time_limit(panel: Panel, args: dict[str, Any]) -> Any:
    name = str(args.get("task_name"))
    task = panel.app.tasks.get(name)
    if task is None:
        return {"error": f"unknown task {name}"}
    task.soft_time_limit = args.get("soft")
    task.time_limit = args.get("hard")
    return {"ok": "time limits set successfully"}


@handler("shutdown")
def _shutdown(panel: Panel, args: dict[str, Any]) -> Any:
    logger.warning("Got shutdown from remote")
    panel.worker.request_shutdown("warm")
    return {"ok": "shutting down"}


@handler("pool_grow")
def _pool_grow(panel: Panel, args: dict[str, Any]) -> Any:
    pool = panel.worker.pool
    if not hasattr(pool, "grow"):
        return {"error": f"the {pool.name} pool cannot grow"}
    pool.grow(int(args.get("n") or 1))
    return {"ok": f"pool will grow (now {pool.limit})"}


@handler("pool_shrink")
def _pool_shrink(panel: Panel, args: dict[str, Any]) -> Any:
    pool = panel.worker.pool
    if not hasattr(pool, "shrink"):
        return {"error": f"the {pool.name} pool cannot shrink"}
    pool.shrink(int(args.get("n") or 1))
    return {"ok": f"pool will shrink (now {pool.limit})"}


@handler("autoscale")
def _autoscale(panel: Panel, args: dict[str, Any]) -> Any:
    scaler = getattr(panel.worker, "autoscaler", None)
    if scaler is None:
        return {"error": "autoscale not enabled (start the worker with --autoscale MAX,MIN)"}
    scaler.update(int(args["max"]), int(args["min"]))
    return {"ok": f"autoscale now max={scaler.max} min={scaler.min}"}


@handler("add_consumer")
def _add_consumer(panel: Panel, args: dict[str, Any]) -> Any:
    queue = str(args.get("queue"))
    consumer = panel.worker.consumer
    if queue in consumer.queues:
        return {"ok": f"already consuming from {queue!r}"}
    consumer.queues = [*consumer.queues, queue]
    panel.worker.listener.queues.add(queue)
    _save_queues(panel)
    consumer.wake()
    return {"ok": f"add consumer {queue}"}


@handler("cancel_consumer")
def _cancel_consumer(panel: Panel, args: dict[str, Any]) -> Any:
    queue = str(args.get("queue"))
    consumer = panel.worker.consumer
    if queue not in consumer.queues:
        return {"error": f"not consuming from {queue!r}"}
    if len(consumer.queues) == 1:
        return {"error": f"{queue!r} is the last queue; a worker consumes at least one"}
    consumer.queues = [q for q in consumer.queues if q != queue]
    consumer.turn = 0
    panel.worker.listener.queues.discard(queue)
    _save_queues(panel)
    return {"ok": f"no longer consuming from {queue}"}


def _save_queues(panel: Panel) -> None:
    db = panel.app.database
    with db.connection() as conn:
        conn.execute(
            query("set_worker_queues", db.schema),
            {"queues": panel.worker.consumer.queues, "worker_id": panel.worker.worker_id},
        )


__all__ = ["HANDLERS", "Panel", "to_signum"]
