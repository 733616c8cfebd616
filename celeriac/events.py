"""Task events (``worker -E`` / ``worker_send_task_events``), recorded in the database.

Celery sends events to a fanout exchange; here each event is a row in ``events`` with
Celery's type names and fields (task-received, task-started, task-succeeded,
task-failed, task-retried, task-revoked; task-sent from publishers with
``task_send_sent_event``) and a NOTIFY, so ``celeriac events`` (or any
monitor) can follow them. Recording hooks Celery's signals in the worker, so it works
in every pool (prefork children record their own task-started/succeeded/failed). Each
event costs one INSERT: enable it for monitoring, not for peak throughput.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.db.queries import query

if TYPE_CHECKING:
    import psycopg

    from celeriac.app import Celery
    from celeriac.message import Message

logger = logging.getLogger(__name__)

PRUNE_EVERY = 300.0


def events_channel(schema: str) -> str:
    """NOTIFY channel carrying the ids of new events."""
    return f"celeriac_events.{schema}"


class EventRecorder:
    """Writes task events for one worker node."""

    def __init__(self, app: Celery, hostname: str) -> None:
        self.app = app
        self.hostname = hostname
        self.last_prune = 0.0
        self.handlers: list[tuple[Any, Any]] = []

    def record(self, type_: str, task_id: str | None, **fields: Any) -> None:
        """Insert one event; a failure is logged, never raised into the task's path."""
        db = self.app.database
        fields.setdefault("pid", os.getpid())
        try:
            with db.connection() as conn:
                conn.execute(
                    query("insert_event", db.schema),
                    {
                        "type": type_,
                        "task_id": task_id,
                        "hostname": self.hostname,
                        "fields": json.dumps(fields, default=repr),
                        "channel": events_channel(db.schema),
                    },
                )
                if time.monotonic() - self.last_prune > PRUNE_EVERY:
                    self.last_prune = time.monotonic()
                    conn.execute(query("prune_events", db.schema))
        except Exception as exc:
            logger.warning("could not record event %s for %s: %s", type_, task_id, exc)

    def connect(self) -> None:
        """Hook the task signals (in this process and, by inheritance, pool children)."""
        pairs = [
            (signals.task_received, self._received),
            (signals.task_prerun, self._started),
            (signals.task_success, self._succeeded),
            (signals.task_failure, self._failed),
            (signals.task_retry, self._retried),
            (signals.task_revoked, self._revoked),
        ]
        for signal, handler in pairs:
            signal.connect(handler, weak=False)
        self.handlers = pairs

    def disconnect(self) -> None:
        for signal, handler in self.handlers:
            signal.disconnect(handler)
        self.handlers = []

    # handlers: Celery's event fields -------------------------------------------------------
    def _received(self, sender: Any = None, request: Any = None, **kw: Any) -> None:
        eta = getattr(request, "eta", None)
        self.record(
            "task-received",
            getattr(request, "task_id", None),
            name=getattr(request, "task_name", None),
            retries=getattr(request, "retries", 0),
            eta=eta.isoformat() if eta is not None else None,
            queue=getattr(request, "queue", None),
        )

    def _started(self, sender: Any = None, task_id: str | None = None, **kw: Any) -> None:
        self.record("task-started", task_id, name=getattr(sender, "name", None))

    def _succeeded(self, sender: Any = None, result: Any = None, **kw: Any) -> None:
        self.record("task-succeeded", _current_id(sender), result=repr(result))

    def _failed(self, sender: Any = None, task_id: str | None = None, **kw: Any) -> None:
        exc = kw.get("exception")
        self.record("task-failed", task_id, exception=repr(exc), traceback=str(kw.get("einfo")))

    def _retried(self, sender: Any = None, request: Any = None, **kw: Any) -> None:
        task_id = getattr(request, "id", None) or _current_id(sender)
        self.record("task-retried", task_id, exception=repr(kw.get("reason")))

    def _revoked(self, sender: Any = None, request: Any = None, **kw: Any) -> None:
        self.record(
            "task-revoked",
            getattr(request, "task_id", None),
            terminated=bool(kw.get("terminated")),
            signum=kw.get("signum"),
            expired=bool(kw.get("expired")),
        )


def send_event(
    app: Celery, type_: str, task_id: str | None, hostname: str | None, **fields: Any
) -> None:
    """``Task.send_event``: a custom event (e.g. ``task-progress``) for monitors, written
    whether or not the worker records its own events (-E), as in Celery."""
    db = app.database
    with db.connection() as conn:
        conn.execute(
            query("insert_event", db.schema),
            {
                "type": type_,
                "task_id": task_id,
                "hostname": hostname,
                "fields": json.dumps(fields, default=repr),
                "channel": events_channel(db.schema),
            },
        )


def sent_fields(message: Message) -> dict[str, Any]:
    """Celery's task-sent fields for a published message."""
    headers = message.headers
    return {
        "name": message.task_name,
        "args": headers.get("argsrepr"),
        "kwargs": headers.get("kwargsrepr"),
        "retries": message.retries,
        "eta": message.eta.isoformat() if message.eta else None,
        "expires": message.expires.isoformat() if message.expires else None,
        "queue": message.queue,
        "exchange": "",
        "routing_key": message.queue,
        "root_id": headers.get("root_id"),
        "parent_id": headers.get("parent_id"),
    }


def record_sent(
    app: Celery, messages: Sequence[Message], conn: psycopg.Connection[Any] | None = None
) -> None:
    """task-sent events (``task_send_sent_event``) for messages just published — on
    ``conn`` when given (the publishing transaction: no event without its task)."""
    if not messages:
        return
    db = app.database
    params = {
        "type": "task-sent",
        "hostname": messages[0].headers.get("origin"),
        "task_ids": [m.task_id for m in messages],
        "fields": [json.dumps(sent_fields(m), default=repr) for m in messages],
        "channel": events_channel(db.schema),
    }
    if conn is not None:
        conn.execute(query("insert_events", db.schema), params)
        return
    try:
        with db.connection() as own:
            own.execute(query("insert_events", db.schema), params)
    except Exception as exc:  # the tasks are queued; only monitoring loses the event
        logger.warning("could not record task-sent for %d task(s): %s", len(messages), exc)


def _current_id(task: Any) -> str | None:
    request = getattr(task, "request", None)
    return getattr(request, "id", None)


def read_events(app: Celery, after: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Events with an id above ``after``, oldest first."""
    db = app.database
    app.ensure_schema()
    with db.connection() as conn:
        rows = conn.execute(
            query("events_after", db.schema), {"after": after, "limit": limit}
        ).fetchall()
    keys = ("id", "type", "uuid", "hostname", "timestamp", "fields")
    return [dict(zip(keys, row, strict=True)) for row in rows]


__all__ = [
    "EventRecorder",
    "events_channel",
    "read_events",
    "record_sent",
    "send_event",
    "sent_fields",
]
