"""Turning a call into a Message: ids, eta/countdown/expires, routing, headers, limits.

Everything that can be wrong with a call is found here, before anything is written:
bad option types, soft limit above hard limit, arguments that don't serialize, a
payload over ``task_max_payload_size``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from celeriac import _state, routing, serialization, signals
from celeriac.canvas import maybe_signature
from celeriac.db.pool import is_connection_error, translate_errors
from celeriac.exceptions import PayloadTooLarge
from celeriac.message import (
    ChordJoin,
    Message,
    MessageBatch,
    args_encoder,
    encode_body,
    encode_headers,
)

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Task

logger = logging.getLogger(__name__)
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; naive values are taken as UTC (enable_utc)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def call_arguments(name: str, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """Check ``args`` is a list or tuple and ``kwargs`` a mapping (Celery's TypeErrors).

    Catches the classic ``apply_async(("text"))`` — a string, not a 1-tuple — before it
    is split into characters.
    """
    if args is None:
        args = ()
    if not isinstance(args, list | tuple):
        raise TypeError(
            f"{name}: task args must be a list or tuple, not {type(args).__name__} "
            f"(a single argument is written (value,))"
        )
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(
            f"{name}: task keyword arguments must be a mapping, not {type(kwargs).__name__}"
        )
    return list(args), dict(kwargs)


def _seconds(option: str, value: Any) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{option} must be a number of seconds, not {type(value).__name__}")
    return float(value)


def resolve_eta(countdown: Any, eta: Any) -> dt.datetime | None:
    """``countdown`` (seconds) wins over ``eta`` (datetime or ISO text), as in Celery."""
    if countdown is not None:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=_seconds("countdown", countdown))
    if eta is None:
        return None
    if isinstance(eta, str):
        eta = dt.datetime.fromisoformat(eta)
    if not isinstance(eta, dt.datetime):
        raise TypeError(f"eta must be a datetime or ISO 8601 text, not {type(eta).__name__}")
    return to_utc(eta)


def resolve_expires(expires: Any) -> dt.datetime | None:
    """Seconds from now, a datetime, or ISO text; negative seconds mean now."""
    if expires is None:
        return None
    if isinstance(expires, dt.timedelta):
        expires = expires.total_seconds()
    if isinstance(expires, int | float):
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(0.0, float(expires)))
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    if not isinstance(expires, dt.datetime):
        raise TypeError(f"expires must be seconds or a datetime, not {type(expires).__name__}")
    return to_utc(expires)


def _signatures(value: Any, app: Celery) -> list[dict[str, Any]] | None:
    if not value:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    return [dict(maybe_signature(item, app=app) or {}) for item in items]


class MessageBuilder:
    """Builds messages for one app."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def build(
        self,
        name: str,
        args: Any,
        kwargs: Any,
        *,
        options: dict[str, Any],
        task_type: Task | None = None,
        **fields: Any,
    ) -> Message:
        conf = self.app.conf
        args, kwargs = call_arguments(name, args, kwargs)
        task_id = fields.get("task_id") or str(uuid.uuid4())
        hard, soft = (
            None if fields.get(key) is None else _seconds(key, fields[key])
            for key in ("time_limit", "soft_time_limit")
        )
        fields.update(time_limit=hard, soft_time_limit=soft)
        if hard is not None and soft is not None and soft > hard:
            raise ValueError(f"soft_time_limit ({soft}) must not exceed time_limit ({hard})")
        queue, priority = self._route(name, args, kwargs, options, task_type)
        serializer = options.get("serializer") or conf.task_serializer
        content_type = serialization.content_type_of(serializer)
        headers = self._headers(name, task_id, fields, options, args, kwargs)
        body = encode_body(args, kwargs, self._embed(fields), content_type)
        self._check_size(name, task_id, body)
        acks_late = task_type.acks_late if task_type is not None else conf.task_acks_late
        rowl = (
            task_type.reject_on_worker_lost
            if task_type is not None
            else conf.task_reject_on_worker_lost
        )
        return Message(
            task_id=task_id,
            task_name=name,
            queue=queue,
            body=body,
            content_type=content_type,
            headers=headers,
            priority=priority,
            eta=resolve_eta(fields.get("countdown"), fields.get("eta")),
            expires=resolve_expires(fields.get("expires")),
            retries=int(fields.get("retries") or 0),
            acks_late=bool(acks_late),
            reject_on_worker_lost=bool(rowl),
        )

    def build_batch(
        self, name: str, calls: Sequence[list[Any]], *, options: dict[str, Any], task_type: Task
    ) -> MessageBatch | None:
        """Columns for many calls of ``name`` with the same ``options`` (no I/O); None when
        a router may send calls to different queues (then build each message).

        The first call is built as a normal message, which checks the options; the
        others reuse its headers with their own id and ``argsrepr`` spliced in, and are
        built as they are sent (``MessageBatch.rows``): a call that cannot be encoded
        fails the write, which then queues none of them.
        """
        if not calls or not routing.is_static(self.app.conf.task_routes):
            return None
        fields, options = split_fields(options)
        if "task_id" in options:
            raise ValueError("delay_many: task_id cannot be shared by a batch")
        id_part, args_token = f"@{uuid.uuid4().hex}@", f"@{uuid.uuid4().hex}@"
        fields["task_id"] = id_part
        first = self.build(name, calls[0], {}, options=options, task_type=task_type, **fields)
        template = encode_headers({**first.headers, "argsrepr": args_token})
        args_part = json.dumps(args_token)
        embed = self._embed(fields)
        content_type = first.content_type
        task_ids = new_ids(len(calls))
        encode, limit = args_encoder(embed, content_type), self.app.conf.task_max_payload_size

        def build() -> Iterator[tuple[str, bytes]]:
            for task_id, args in zip(task_ids, calls, strict=True):
                body = encode(args)
                if limit and len(body) > limit:
                    self._check_size(name, task_id, body)
                argsrepr = json.dumps(_short_repr(args))
                yield template.replace(args_part, argsrepr).replace(id_part, task_id), body

        return MessageBatch(
            name,
            first.queue,
            first.priority,
            content_type,
            task_ids,
            [],
            [],
            eta=first.eta,
            expires=first.expires,
            acks_late=first.acks_late,
            reject_on_worker_lost=first.reject_on_worker_lost,
            unbuilt=build(),
        )

    def _embed(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "callbacks": _signatures(fields.get("link"), self.app),
            "errbacks": _signatures(fields.get("link_error"), self.app),
            "chain": fields.get("chain"),
            "chord": fields.get("chord"),
        }

    def _check_size(self, name: str, task_id: str, body: bytes) -> None:
        limit = self.app.conf.task_max_payload_size
        if limit and len(body) > limit:
            raise PayloadTooLarge(
                f"task {name}[{task_id}]: serialized arguments are {len(body):,} bytes, over "
                f"task_max_payload_size ({limit:,}); pass a reference (a path or a row id) "
                f"instead of the data, or raise the setting"
            )

    def _route(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        task_type: Task | None,
    ) -> tuple[str, int]:
        routed = routing.route(self.app.conf.task_routes, name, args, kwargs, options, task_type)
        queue = options.get("queue") or routed.get("queue") or self.app.conf.task_default_queue
        if not isinstance(queue, str):
            queue = getattr(queue, "name", None) or str(queue)
        priority = options.get("priority")
        if priority is None:
            priority = routed.get("priority", self.app.conf.task_default_priority)
        if priority is None:
            priority = 0
        if not isinstance(priority, int) or not 0 <= priority <= 255:
            raise ValueError(f"priority must be an integer from 0 to 255, got {priority!r}")
        return queue, priority

    def _headers(
        self,
        name: str,
        task_id: str,
        fields: dict[str, Any],
        options: dict[str, Any],
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        parent = _state.current_task()
        request = parent.request if parent is not None else None
        parent_id = fields.get("parent_id") or (request.id if request else None)
        root_id = fields.get("root_id") or (request.root_id or request.id if request else None)
        headers: dict[str, Any] = dict(options.get("headers") or {})
        headers.update(
            {
                "lang": "py",
                "task": name,
                "id": task_id,
                "root_id": root_id or task_id,
                "parent_id": parent_id,
                "group": fields.get("group_id") or options.get("group_id"),
                "group_index": fields.get("group_index"),
                "timelimit": [fields.get("time_limit"), fields.get("soft_time_limit")],
                "origin": _ORIGIN,
                "ignore_result": bool(options.get("ignore_result", False)),
                "shadow": fields.get("shadow"),
                "argsrepr": _short_repr(args),
                "kwargsrepr": _short_repr(kwargs),
            }
        )
        return headers


class Publisher:
    """Writes what a call built: on the caller's open transaction (``connection=``, or
    the one ``app.publish_connection`` returns) or on celeriac's own connection with
    publish retries — safe because publishing is idempotent by task id (a retry after a
    lost COMMIT reply finds the job, or its result, and writes nothing)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(
        self,
        messages: list[Message],
        connection: Any = None,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
        chords: Sequence[ChordJoin] = (),
        durable: bool = True,
    ) -> None:
        """Write messages (and the chords they start) in one statement, with the
        before/after_task_publish signals."""
        for message in messages:
            signals.before_task_publish.send(
                sender=message.task_name,
                body=message.body,
                exchange="",
                routing_key=message.queue,
                headers=message.headers,
                properties={},
                declare=[],
                retry_policy=retry_policy,
            )

        def write(conn: psycopg.Connection[Any] | None) -> None:
            self.app.broker.publish(messages, conn=conn, chords=chords, durable=durable)

        connection = self._connection(connection)
        self._write(write, connection, retry, retry_policy)
        if self.app.conf.task_send_sent_event:
            from celeriac.events import record_sent

            record_sent(self.app, messages, connection)
        for message in messages:
            signals.after_task_publish.send(
                sender=message.task_name, body=message.body, exchange="", routing_key=message.queue
            )

    def publish_batch(
        self, batch: MessageBatch, connection: Any = None, durable: bool = True
    ) -> None:
        """Write a batch built by ``build_batch`` in one statement (taken only when no
        one wants messages one at a time: ``wants_messages``)."""

        tries = 0

        def write(conn: psycopg.Connection[Any] | None) -> None:
            nonlocal tries
            tries += 1  # a retry may follow a COMMIT whose reply was lost: not fresh
            self.app.broker.publish_batch(batch, conn=conn, durable=durable, fresh=tries == 1)

        self._write(write, self._connection(connection), True, None)

    def wants_messages(self) -> bool:
        """Whether publishing must go message by message: something listens to
        before/after_task_publish, or task-sent events are recorded."""
        return bool(
            self.app.conf.task_send_sent_event
            or signals.before_task_publish.receivers()
            or signals.after_task_publish.receivers()
        )

    def _connection(self, connection: Any) -> Any:
        """The caller's connection, or the one ``app.publish_connection`` returns."""
        if connection is None and self.app.publish_connection is not None:
            return self.app.publish_connection()
        return connection

    def _write(
        self,
        write: Callable[[psycopg.Connection[Any] | None], None],
        connection: Any,
        retry: bool,
        policy: dict[str, Any] | None,
    ) -> None:
        if connection is None:
            self._with_retry(write, retry, policy)
            return
        if not isinstance(connection, psycopg.Connection):
            raise TypeError(
                f"connection= takes a psycopg (3) connection, to publish inside its open "
                f"transaction; got {type(connection).__name__}"
            )
        with translate_errors(self.app.database.url):  # e.g. an aborted transaction
            write(connection)

    def _with_retry(
        self,
        write: Callable[[psycopg.Connection[Any] | None], None],
        retry: bool,
        policy: dict[str, Any] | None,
    ) -> None:
        policy = {**self.app.conf.task_publish_retry_policy, **(policy or {})}
        attempts = int(policy.get("max_retries", 3)) if retry else 0
        interval = float(policy.get("interval_start", 0))
        for attempt in range(attempts + 1):
            try:
                write(None)
                return
            except Exception as exc:
                if not is_connection_error(exc) or attempt >= attempts:
                    raise
                logger.warning("publish failed (%s); retrying in %.1fs", exc, interval)
                time.sleep(interval)
                interval = min(
                    interval + float(policy.get("interval_step", 0.2)),
                    float(policy.get("interval_max", 1)),
                )


def _short_repr(value: Any, limit: int = 1024) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# apply_async options that are message fields (the rest are routing/header options)
BATCH_FIELDS = (
    "countdown",
    "eta",
    "expires",
    "link",
    "link_error",
    "time_limit",
    "soft_time_limit",
)


def split_fields(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``apply_async`` options of a batch into message fields and the rest."""
    rest = dict(options)
    return {key: rest.pop(key) for key in BATCH_FIELDS if key in rest}, rest


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as text: ``str(uuid.uuid4())`` at a third of
    the cost — one ``os.urandom`` call for all of them."""
    raw = os.urandom(16 * count).hex()
    ids = []
    for i in range(0, 32 * count, 32):
        h = raw[i : i + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return ids


def is_durable(mode: Any) -> bool:
    """Celery's ``delivery_mode``: 2 / "persistent" (the default) commits the publish
    durably; 1 / "transient" commits it asynchronously (``synchronous_commit = off`` for
    that transaction): faster, but a task accepted so may be lost if the server crashes
    within about three times ``wal_writer_delay`` (600 ms by default) after the call."""
    if mode is None or mode == 2 or mode == "persistent":
        return True
    if mode == 1 or mode == "transient":
        return False
    raise ValueError(f"delivery_mode must be 'persistent' (2) or 'transient' (1), not {mode!r}")
