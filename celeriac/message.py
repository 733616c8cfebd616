"""The job as plain data: what is published, what a worker claims. No I/O here.

A message follows Celery's protocol v2: headers (id, task, root_id, parent_id, group,
timelimit, ...) and a body ``[args, kwargs, embed]`` where ``embed`` holds callbacks,
errbacks, chain and chord. The body is serialized with the task serializer; headers are
stored as JSON so the database can read ``parent_id`` and ``group`` without decoding.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from celeriac import serialization
from celeriac.exceptions import DecodeError


@dataclass(frozen=True, slots=True)
class Message:
    """A task message ready to be published."""

    task_id: str
    task_name: str
    queue: str
    body: bytes
    content_type: str
    headers: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    eta: dt.datetime | None = None
    expires: dt.datetime | None = None
    retries: int = 0
    acks_late: bool = False
    reject_on_worker_lost: bool = False


@dataclass(slots=True)
class MessageBatch:
    """Many calls of one task with the same options, as columns (``Task.delay_many``):
    per call only the id, the headers (JSON text) and the body differ.

    ``unbuilt`` yields the (headers, body) of the calls after those in ``headers`` and
    ``bodies``: ``rows()`` builds them as it is iterated, so a COPY sends its first rows
    while later ones are still being built and the server works on them meanwhile. Built
    first and sent after, 5,000 calls took the sum of both (bench/README.md, "Enqueue")."""

    task_name: str
    queue: str
    priority: int
    content_type: str
    task_ids: list[str]
    headers: list[str]
    bodies: list[bytes]
    eta: dt.datetime | None = None
    expires: dt.datetime | None = None
    acks_late: bool = False
    reject_on_worker_lost: bool = False
    unbuilt: Iterator[tuple[str, bytes]] | None = None

    def rows(self) -> Iterator[tuple[str, str, bytes]]:
        """Every call's (task id, headers, body), building those not built yet. Left off
        half-way (a failed COPY), the next ``rows()`` takes up where this one stopped."""
        yield from zip(self.task_ids, self.headers, self.bodies, strict=False)  # ids: all
        if self.unbuilt is None:
            return
        for headers, body in self.unbuilt:
            self.headers.append(headers)
            self.bodies.append(body)
            yield self.task_ids[len(self.bodies) - 1], headers, body
        self.unbuilt = None

    def build_all(self) -> None:
        """Build every call not built yet."""
        for _ in self.rows():
            pass

    def params(self) -> dict[str, Any]:
        """The parameters of the ``publish_batch`` query."""
        self.build_all()
        return {
            "task_name": self.task_name,
            "queue": self.queue,
            "priority": self.priority,
            "content_type": self.content_type,
            "task_ids": self.task_ids,
            "headers": self.headers,
            "bodies": self.bodies,
            "eta": self.eta,
            "expires": self.expires,
            "acks_late": self.acks_late,
            "reject_on_worker_lost": self.reject_on_worker_lost,
        }


@dataclass(slots=True)
class Job:
    """A claimed job: the message plus its row id and fencing token (attempt).

    Treated as immutable (``dataclasses.replace`` makes a changed copy) but not frozen:
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    2.3 against 0.3 us here, paid twice per job (built from the claim's row, rebuilt from
    the pipe in the pool process)."""

    id: int
    attempt: int
    task_id: str
    task_name: str
    queue: str
    priority: int
    eta: dt.datetime | None
    expires: dt.datetime | None
    retries: int
    acks_late: bool
    reject_on_worker_lost: bool
    content_type: str
    # the headers, or their JSON text as the claim reads them: a worker's parent reads
    # only the time limits (``limits``), so the text is parsed in the pool process that
    # runs the job (``headers``), not in the parent, and crosses the pipe as one string
    header_data: dict[str, Any] | str
    body: bytes
    revoked: bool = False
    # the claim recorded it as started (claimed_at set): it needs no started mark
    started: bool = False
    # the message's (hard, soft) time limits as the claim read them out of the headers;
    # None: read them from the headers
    limits: tuple[float | None, float | None] | None = None
    _headers: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, Any]:
        """The message headers (Celery protocol v2), parsed on first use."""
        if self._headers is None:
            data = self.header_data
            self._headers = json.loads(data) if isinstance(data, str) else data
        assert self._headers is not None
        return self._headers

    def time_limits(self) -> tuple[float | None, float | None]:
        """The message's (hard, soft) time limits, None where it sets none."""
        if self.limits is not None:
            return self.limits
        hard, soft = (self.headers.get("timelimit") or [None, None])[:2]
        return hard, soft

    @classmethod
    def from_row(
        cls,
        row: tuple[Any, ...],
        started: bool = False,
        limits: tuple[float | None, float | None] | None = None,
    ) -> Job:
        """Build a Job from a ``claim`` row (column order of the query)."""
        (
            id_,
            attempt,
            task_id,
            task_name,
            queue,
            priority,
            eta,
            expires,
            retries,
            acks_late,
            reject,
            content_type,
            headers,
            body,
            revoked,
        ) = row
        return cls(
            id_,
            attempt,
            task_id,
            task_name,
            queue,
            priority,
            eta,
            expires,
            retries,
            acks_late,
            reject,
            content_type,
            headers,
            bytes(body),
            bool(revoked),
            started,
            limits,
        )

    def __reduce__(self) -> tuple[Callable[..., Job], tuple[Any, ...]]:
        # pickled once per job on its way to a prefork child: the fields as a plain
        # tuple are twice as fast as the slots dataclass's default (getstate/setstate),
        # and the times as integers (below) another 1.6x
        values = _job_fields(self)
        return (_job, (*values[:6], pack_time(self.eta), pack_time(self.expires), *values[8:]))


# the fields __init__ takes (not the parsed headers: they are parsed again where needed)
_job_fields = operator.attrgetter(*(f.name for f in fields(Job) if f.init))


def _job(*values: Any) -> Job:
    fields_ = list(values)
    fields_[6], fields_[7] = unpack_time(values[6]), unpack_time(values[7])
    return Job(*fields_)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def pack_time(value: dt.datetime | None) -> int | dt.datetime | None:
    """An aware datetime as microseconds since the epoch, for pickling between a worker
    and its pool processes: pickling one with its time zone (psycopg's ``ZoneInfo``, or
    ``datetime.UTC``) cost more than all the other fields of a job or outcome together
    (4-5 us of 7.5 us for an outcome). The instant is kept exactly; the zone comes back
    as UTC. Naive datetimes and None pass as they are."""
    if value is None or value.tzinfo is None:
        return value
    return (value - _EPOCH) // _MICROSECOND


def unpack_time(value: int | dt.datetime | None) -> dt.datetime | None:
    """``pack_time`` undone."""
    return _EPOCH + dt.timedelta(microseconds=value) if isinstance(value, int) else value


@dataclass(frozen=True, slots=True)
class ChordJoin:
    """A chord's join: created with the header's messages, counted down as each header
    task ends; the body runs when it reaches zero (see ``celeriac.chords``)."""

    group_id: str
    task_ids: tuple[str, ...]  # the header's results, in header order
    content_type: str
    body: bytes  # the body signature, serialized


@dataclass(frozen=True, slots=True)
class FinalState:
    """A final state for a task that will never run: a step of a chain after a failure, a
    chord body whose header failed. A chord part (``group_id``) is counted as ended."""

    task_id: str
    group_id: str | None
    status: str
    content_type: str
    result: bytes | None
    traceback: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Body:
    """The decoded body of a message."""

    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any]


def encode_body(args: Any, kwargs: Any, embed: dict[str, Any] | None, content_type: str) -> bytes:
    """Serialize ``[args, kwargs, embed]``; raises EncodeError at the call site."""
    return serialization.dumps([list(args), dict(kwargs), embed or {}], content_type)


def args_encoder(embed: dict[str, Any] | None, content_type: str) -> Callable[[Any], bytes]:
    """``encode_body(args, {}, embed, content_type)`` for many calls sharing ``embed``
    (Task.delay_many): with JSON the constant ``,{},{embed}]`` tail is encoded once."""
    if content_type != serialization.JSON:
        return lambda args: encode_body(args, {}, embed, content_type)
    tail = b"," + serialization.dumps([{}, embed or {}])[1:]
    return lambda args: b"[" + serialization.dumps(list(args)) + tail


def decode_body(job: Job, accept: frozenset[str]) -> Body:
    """Decode a job's body, refusing content types not accepted; raises DecodeError."""
    value = serialization.loads(job.body, job.content_type, accept)
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not isinstance(value[0], list | tuple)
        or not isinstance(value[1], dict)
    ):
        raise DecodeError(
            f"message body of task {job.task_name}[{job.task_id}] is not "
            f"[args, kwargs, embed]: {type(value).__name__}"
        )
    embed = value[2] if isinstance(value[2], dict) else {}
    return Body(list(value[0]), dict(value[1]), embed)


def encode_headers(headers: dict[str, Any]) -> str:
    """Headers as JSON text for the jsonb column (non-JSON values become strings)."""
    return json.dumps(headers, default=str, separators=(",", ":"))


__all__ = [
    "Body",
    "ChordJoin",
    "FinalState",
    "Job",
    "Message",
    "MessageBatch",
    "decode_body",
    "encode_body",
    "encode_headers",
]
