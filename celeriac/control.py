"""``app.control``: remote control of workers through the database.

A command is a JSON NOTIFY on the control channel: ``{"id", "command", "arguments",
"destination", "reply"}``. Each worker it is meant for runs it and, when a reply is
wanted, inserts its answer into ``control_replies`` and NOTIFYs the reply channel with
the request id. The client LISTENs there, collects the rows of its request (deleting
them) and stops as soon as every live worker addressed has answered, or at the timeout.
No broadcast exchange is needed: PostgreSQL is the mailbox.

Replies have Celery's shapes: ``broadcast`` returns ``[{nodename: reply}, ...]`` and
``inspect()`` methods return ``{nodename: reply}`` (or None when nobody replied).
Revoke is durable (stored before any worker hears of it; see ``Backend.revoke``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql

from celeriac.broker import control_channel
from celeriac.db.queries import query
from celeriac.exceptions import CeleriacError

if TYPE_CHECKING:
    from celeriac.app import Celery

REVOKE_EXPIRES = 3 * 86400.0  # revoked ids are remembered for three days
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def reply_channel(schema: str) -> str:
    """NOTIFY channel carrying the request ids of new replies."""
    return f"celeriac_replies.{schema}"


class UnknownNodeError(CeleriacError):
    """A destination names no live worker."""


def _destinations(destination: Any) -> list[str] | None:
    if destination is None:
        return None
    if isinstance(destination, str):
        return [d.strip() for d in destination.split(",") if d.strip()]
    return list(destination)


class Control:
    """Remote control of workers, through the database."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def inspect(
        self, destination: Any = None, timeout: float = 1.0, limit: int | None = None, **kw: Any
    ) -> Inspect:
        """Celery's ``app.control.inspect()``: read-only questions to workers."""
        return Inspect(self, destination=destination, timeout=timeout, limit=limit)

    # -- the transport -------------------------------------------------------------------
    def live_nodes(self) -> list[dict[str, Any]]:
        """The workers alive now (their liveness lock is held), by name."""
        from celeriac.worker.maintenance import liveness_namespace

        db = self.app.database
        self.app.ensure_schema()
        with db.connection() as conn:
            rows = conn.execute(
                query("live_nodes", db.schema), {"lock_ns": liveness_namespace(db.schema)}
            ).fetchall()
        keys = ("name", "pid", "hostname", "pool", "concurrency", "queues", "started_at")
        return [dict(zip(keys, row, strict=False)) for row in rows]

    def check_destination(self, destination: Any) -> list[str] | None:
        """Raise UnknownNodeError when a named destination is not a live worker."""
        names = _destinations(destination)
        if names:
            live = {node["name"] for node in self.live_nodes()}
            missing = [name for name in names if name not in live]
            if missing:
                raise UnknownNodeError(
                    f"no live worker named {', '.join(missing)}; online: "
                    f"{', '.join(sorted(live)) or 'none'} (see `celeriac status`)"
                )
        return names

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Any = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to the workers (all, or ``destination``); with ``reply``,
        wait up to ``timeout`` seconds and return ``[{nodename: reply}, ...]``."""
        names = _destinations(destination)
        request_id = uuid.uuid4().hex
        payload = json.dumps(
            {
                "id": request_id,
                "command": command,
                "arguments": arguments or {},
                "destination": names,
                "reply": reply,
            },
            default=str,
        )
        if len(payload.encode()) > NOTIFY_LIMIT:
            raise CeleriacError(f"control command {command!r} is too large for one NOTIFY")
        db = self.app.database
        self.app.ensure_schema()
        if not reply:
            with db.connection() as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (control_channel(db.schema), payload))
            return None
        expected = limit or (len(names) if names else len(self.live_nodes()))
        if not expected:
            return []
        return self._collect(request_id, payload, expected, timeout)

    def _collect(
        self, request_id: str, payload: str, expected: int, timeout: float
    ) -> list[dict[str, Any]]:
        db = self.app.database
        replies: dict[str, Any] = {}
        conn = db.connect()
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(reply_channel(db.schema))))
            conn.execute("SELECT pg_notify(%s, %s)", (control_channel(db.schema), payload))
            deadline = time.monotonic() + timeout
            while len(replies) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for notify in conn.notifies(timeout=remaining):
                    if notify.payload == request_id:
                        break
                replies.update(self._take(conn, request_id))
            replies.update(self._take(conn, request_id))
            conn.execute(query("prune_replies", db.schema))
        finally:
            conn.close()
        return [{node: answer} for node, answer in sorted(replies.items())]

    def _take(self, conn: Any, request_id: str) -> dict[str, Any]:
        rows = conn.execute(
            query("take_replies", self.app.database.schema), {"request_id": request_id}
        ).fetchall()
        return {node: answer for node, answer in rows}

    def _command(self, command: str, destination: Any, kw: dict[str, Any], **args: Any) -> Any:
        return self.broadcast(
            command,
            arguments=args,
            destination=destination,
            reply=bool(kw.get("reply", False)),
            timeout=float(kw.get("timeout", 1.0)),
            limit=kw.get("limit"),
        )

    # -- Celery's control commands -------------------------------------------------------------
    def ping(self, destination: Any = None, timeout: float = 1.0, **kw: Any) -> Any:
        return self._command("ping", destination, {**kw, "reply": True, "timeout": timeout})

    def revoke(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Revoke tasks durably: waiting ones become REVOKED now; running ones are
        stopped when ``terminate`` (only that task, never whatever the process runs next)."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        signal = signal or "SIGTERM"
        self.app.backend.revoke(ids, terminate, signal if terminate else None, REVOKE_EXPIRES)
        if kwargs.get("reply"):
            return self._command(
                "revoke", destination, kwargs, task_ids=ids, terminate=terminate, signal=signal
            )
        return None

    def terminate(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        signal: str = "SIGTERM",
        **kwargs: Any,
    ) -> Any:
        return self.revoke(
            task_id, destination=destination, terminate=True, signal=signal, **kwargs
        )

    def rate_limit(
        self, task_name: str, rate_limit: Any, destination: Any = None, **kw: Any
    ) -> Any:
        return self._command(
            "rate_limit", destination, kw, task_name=task_name, rate_limit=rate_limit
        )

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Any = None,
        **kw: Any,
    ) -> Any:
        return self._command(
            "time_limit", destination, kw, task_name=task_name, soft=soft, hard=hard
        )

    def shutdown(self, destination: Any = None, **kw: Any) -> Any:
        return self._command("shutdown", destination, kw)

    def pool_grow(self, n: int = 1, destination: Any = None, **kw: Any) -> Any:
        return self._command("pool_grow", destination, kw, n=n)

    def pool_shrink(self, n: int = 1, destination: Any = None, **kw: Any) -> Any:
        return self._command("pool_shrink", destination, kw, n=n)

    def autoscale(self, max: int, min: int, destination: Any = None, **kw: Any) -> Any:
        return self._command("autoscale", destination, kw, max=max, min=min)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: Any = None,
        destination: Any = None,
        **kw: Any,
    ) -> Any:
        return self._command("add_consumer", destination, kw, queue=queue)

    def cancel_consumer(self, queue: str, destination: Any = None, **kw: Any) -> Any:
        return self._command("cancel_consumer", destination, kw, queue=queue)

    def purge(self, queues: Iterable[str] | None = None) -> int:
        """Delete waiting jobs (of ``queues``, default the default queue); return how many."""
        return self.app.broker.purge(list(queues or [self.app.conf.task_default_queue]))

    discard_all = purge


class Inspect:
    """Celery's ``Inspect``: each method returns ``{nodename: reply}`` or None."""

    def __init__(
        self,
        control: Control,
        destination: Any = None,
        timeout: float = 1.0,
        limit: int | None = None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout
        self.limit = limit

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command,
            arguments=arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
        )
        merged: dict[str, Any] = {}
        for reply in replies or []:
            merged.update(reply)
        return merged or None

    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: Any = None) -> dict[str, Any] | None:
        return self._request("active")

    def reserved(self, safe: Any = None) -> dict[str, Any] | None:
        return self._request("reserved")

    def scheduled(self, safe: Any = None) -> dict[str, Any] | None:
        return self._request("scheduled")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, Any] | None:
        flat: list[str] = []
        for item in ids:
            flat += [item] if isinstance(item, str) else list(item)
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)


__all__ = ["Control", "Inspect", "UnknownNodeError", "reply_channel"]
