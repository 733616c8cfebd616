"""Turning a call into a Message: ids, eta/countdown/expires, routing, headers, limits.

Everything that can be wrong with a call is found here, before anything is written:
bad option types, soft limit above hard limit, arguments that don't serialize, a
payload over ``task_max_payload_size``.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac import _state, routing, serialization
from celeriac.canvas import maybe_signature
from celeriac.exceptions import PayloadTooLarge
from celeriac.message import Message, encode_body

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.task import Task

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
        embed = {
            "callbacks": _signatures(fields.get("link"), self.app),
            "errbacks": _signatures(fields.get("link_error"), self.app),
            "chain": fields.get("chain"),
            "chord": fields.get("chord"),
        }
        body = encode_body(args, kwargs, embed, content_type)
        limit = conf.task_max_payload_size
        if limit and len(body) > limit:
            raise PayloadTooLarge(
                f"task {name}[{task_id}]: serialized arguments are {len(body):,} bytes, over "
                f"task_max_payload_size ({limit:,}); pass a reference (a path or a row id) "
                f"instead of the data, or raise the setting"
            )
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


def _short_repr(value: Any, limit: int = 1024) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
