"""Turning a signature — a task, chain, group or chord — into what is written: messages,
the chords they start, and final states of tasks that will never run. No I/O here.

The same plan is written by a client (``apply_async``: one statement), by a worker for
what a finished task sends on (callbacks, the next step of a chain: in the transaction
that records the task's outcome), and by the chord joiner (a chord's body).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac import serialization
from celeriac.canvas import Signature, maybe_signature
from celeriac.message import ChordJoin, FinalState, Message

if TYPE_CHECKING:
    from celeriac.app import Celery

# options that become message fields rather than routing/header options
_FIELDS = (
    "countdown",
    "eta",
    "expires",
    "task_id",
    "link",
    "link_error",
    "time_limit",
    "soft_time_limit",
    "group_id",
    "group_index",
    "chain",
    "chord",
    "shadow",
    "retries",
)


@dataclass(slots=True)
class Plan:
    """What one call writes."""

    messages: list[Message] = field(default_factory=list)
    chords: list[ChordJoin] = field(default_factory=list)
    marks: list[FinalState] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.messages or self.chords or self.marks)


class Planner:
    """Collects the plan of one or more signatures sent from one place.

    ``parent_id`` / ``root_id`` are set when a worker sends on behalf of a finished task;
    otherwise the running task (if any) is the parent, as for ``apply_async``.
    """

    def __init__(
        self, app: Celery, parent_id: str | None = None, root_id: str | None = None
    ) -> None:
        self.app = app
        self.parent_id = parent_id
        self.root_id = root_id
        self.plan = Plan()

    def add(
        self,
        sig: Any,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Plan ``sig`` called with ``args`` prepended and kwargs/options merged."""
        signature = maybe_signature(sig, app=self.app)
        assert signature is not None
        build = getattr(signature, "build", None)
        if build is not None:
            build(self, list(args or ()), dict(kwargs or {}), dict(options or {}))
        else:
            self.task(signature, list(args or ()), dict(kwargs or {}), dict(options or {}))

    def task(
        self, sig: Signature, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> str:
        """Plan one task message; return its id."""
        new_args, new_kwargs, merged = sig._merge(args, kwargs, options)
        task_type = self.app.tasks.get(sig.task)
        defaults = task_type._default_options() if task_type is not None else {}
        merged = {**defaults, **merged}
        fields = {key: merged.pop(key) for key in _FIELDS if key in merged}
        fields.setdefault("task_id", str(uuid.uuid4()))
        for key in ("parent_id", "root_id"):
            value = merged.pop(key, None) or getattr(self, key)
            if value is not None:
                fields[key] = value
        for key in ("chain", "chord"):
            if fields.get(key) is not None:
                fields[key] = _plain(fields[key])
        message = self.app.build_message(
            sig.task, new_args, new_kwargs, options=merged, task_type=task_type, **fields
        )
        self.plan.messages.append(message)
        return message.task_id

    def chord(self, group_id: str, task_ids: list[str], body: Signature) -> None:
        """Plan a chord's join counter; the header's messages are planned separately."""
        content_type = serialization.content_type_of(self.app.conf.task_serializer)
        data = serialization.dumps(_plain(body), content_type)
        self.plan.chords.append(ChordJoin(group_id, tuple(task_ids), content_type, data))


def _plain(value: Any) -> Any:
    """Signatures (and lists of them) as plain dicts, for the message body."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def final_ids(sig: Any, app: Celery | None = None) -> Iterator[tuple[str, str | None, str]]:
    """(task id, group id, task name) of every frozen task in a signature tree."""
    signature = maybe_signature(sig, app=app)
    if signature is None:
        return
    parts = getattr(signature, "parts", None)
    if parts is not None:
        for part in parts():
            yield from final_ids(part, app)
        return
    task_id = signature.options.get("task_id")
    if task_id:
        yield task_id, signature.options.get("group_id"), signature.task


def final_states(
    sigs: Iterable[Any],
    status: str,
    content_type: str,
    result: bytes | None,
    traceback: str | None,
    app: Celery | None = None,
) -> list[FinalState]:
    """The same final state for every task of ``sigs`` (Celery marks a failed chain so)."""
    return [
        FinalState(task_id, group_id, status, content_type, result, traceback, name)
        for sig in sigs
        for task_id, group_id, name in final_ids(sig, app)
    ]


__all__ = ["Plan", "Planner", "final_ids", "final_states"]
