"""Joining chords in PostgreSQL, exactly once.

A chord is a row in ``chords``: the header's task ids (in header order), a counter and
the body signature, inserted in the same statement as the header's messages. Each
header task's end decrements the counter in the transaction that records it (the
``finish`` statement; ``revoke`` for a waiting task; ``store_final`` for a task that will
never run). The decrement is an ``UPDATE`` under a row lock, so exactly one transaction
sees the counter reach zero; in that same transaction the joiner here deletes the row,
reads the header's results and publishes the body with them — or, when a header task did
not succeed, stores FAILURE with ``ChordError`` for the body and fires its errbacks.
A worker dying in between rolls the whole transaction back: the job is rescued and
recorded again, and the chord is joined then. No ``chord_unlock`` polling task.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from celeriac import serialization, states
from celeriac.backend import ResultMeta
from celeriac.broker import AfterCommit, chunk_ids
from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Planner, final_ids, final_states
from celeriac.db.queries import query
from celeriac.exceptions import ChordError, TaskRevokedError
from celeriac.message import FinalState
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger(__name__)


class ChordJoiner:
    """Publishes the bodies of complete chords inside the recording transaction."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def _q(self, name: str) -> bytes:
        return query(name, self.app.database.schema)

    def __call__(self, conn: psycopg.Connection[Any], group_ids: list[str]) -> list[AfterCommit]:
        """Join these chords (their counters reached zero in this transaction)."""
        after: list[AfterCommit] = []
        pending = list(group_ids)
        while pending:
            rows = conn.execute(self._q("take_chords"), {"group_ids": pending}).fetchall()
            pending = []
            for _group_id, task_ids, content_type, body, sort_key in rows:
                ids, data = list(task_ids), bytes(body)
                pending += self._join(conn, ids, content_type, data, sort_key, after)
        return after

    def store_final(
        self, conn: psycopg.Connection[Any], marks: Sequence[FinalState]
    ) -> list[AfterCommit]:
        """Store final states of tasks that will never run; join the chords they end."""
        ready = self._store(conn, marks)
        return self(conn, ready) if ready else []

    def revoked(
        self, conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]
    ) -> list[AfterCommit]:
        """After ``revoke`` deleted waiting jobs: mark the rest of their chains REVOKED
        and join the chords whose counters reached zero."""
        backend = self.app.backend
        reason = backend.encode(TaskRevokedError("revoked"))
        marks: list[FinalState] = []
        ready: list[str] = []
        for kind, key, content_type, body in rows:
            if kind == "chord":
                ready.append(key)
            elif kind == "job":
                chain = _embedded_chain(bytes(body), content_type, self.app.accept_content)
                marks += final_states(
                    reversed(chain), states.REVOKED, backend.content_type, reason, None, self.app
                )
        after = self.store_final(conn, marks) if marks else []
        return after + (self(conn, ready) if ready else [])

    # -- steps --------------------------------------------------------------------------
    def _store(self, conn: psycopg.Connection[Any], marks: Sequence[FinalState]) -> list[str]:
        params = {
            "task_ids": [m.task_id for m in marks],
            "group_ids": [m.group_id for m in marks],
            "statuses": [m.status for m in marks],
            "content_types": [m.content_type for m in marks],
            "results": [m.result for m in marks],
            "tracebacks": [m.traceback for m in marks],
            "names": [m.name for m in marks],
            "expires": self.app.backend.expires,
        }
        ready = [row[0] for row in conn.execute(self._q("store_final"), params).fetchall()]
        channel = self.app.backend.channel
        for payload in chunk_ids([m.task_id for m in marks]):
            conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
        return ready

    def _join(
        self,
        conn: psycopg.Connection[Any],
        task_ids: list[str],
        content_type: str,
        body_data: bytes,
        sort_key: dt.datetime,
        after: list[AfterCommit],
    ) -> list[str]:
        app = self.app
        body = maybe_signature(
            serialization.loads(body_data, content_type, app.accept_content), app=app
        )
        assert body is not None
        values, error = self._header_results(conn, task_ids)
        if error is None:
            planner = Planner(app, parent_id=task_ids[-1] if task_ids else None)
            planner.add(body, [values])
            app.broker.publish(
                planner.plan.messages, conn=conn, chords=planner.plan.chords, sort_key=sort_key
            )
            if app.conf.task_send_sent_event:
                from celeriac.events import record_sent

                record_sent(app, planner.plan.messages, conn)
            return []
        return self._fail(conn, body, error, sort_key, after)

    def _header_results(
        self, conn: psycopg.Connection[Any], task_ids: list[str]
    ) -> tuple[list[Any], ChordError | None]:
        """The header's results in header order, or the ChordError of the first failure."""
        rows = conn.execute(self._q("get_results"), {"task_ids": task_ids}).fetchall()
        metas = {row[0]: _meta(row) for row in rows}
        values = []
        for task_id in task_ids:
            meta = metas.get(task_id)
            if meta is None:
                return [], ChordError(f"Dependency {task_id} has no stored result")
            value = self.app.backend.decode(meta)
            if meta.status != states.SUCCESS:
                return [], ChordError(f"Dependency {task_id} raised {value!r}")
            values.append(value)
        return values, None

    def _fail(
        self,
        conn: psycopg.Connection[Any],
        body: Signature,
        exc: ChordError,
        sort_key: dt.datetime,
        after: list[AfterCommit],
    ) -> list[str]:
        """The body fails with ``exc`` (so does the rest of its chain); errbacks fire."""
        from celeriac.worker import callbacks

        app, backend = self.app, self.app.backend
        chain = list(body.options.get("chain") or [])
        parts = [body, *reversed(chain)]
        body_id = next((task_id for task_id, _, _ in final_ids(body, app)), None)
        if body_id is not None and self._revoked(conn, body_id):
            # the whole chord was revoked: its body ends REVOKED, no errbacks
            reason = backend.encode(TaskRevokedError("revoked"))
            marks = final_states(parts, states.REVOKED, backend.content_type, reason, None, app)
            return self._store(conn, marks)
        logger.warning("Chord body %r fails: %s", body, exc)
        encoded, traceback = backend.encode(exc), f"ChordError: {exc}"
        marks = final_states(parts, states.FAILURE, backend.content_type, encoded, traceback, app)
        request = Context(
            id=body_id, task=body.task, args=body.args, kwargs=body.kwargs, delivery_info={}
        )
        planner = Planner(app, parent_id=body_id)
        for errback in _errbacks(body):
            if callbacks.is_new_style(app, errback):
                after.append(
                    functools.partial(callbacks.call_errback, app, errback, request, exc, None)
                )
            else:
                planner.add(errback, [body_id])
        app.broker.publish(
            planner.plan.messages, conn=conn, chords=planner.plan.chords, sort_key=sort_key
        )
        return self._store(conn, marks)

    def _revoked(self, conn: psycopg.Connection[Any], task_id: str) -> bool:
        rows = conn.execute(self._q("revoked_among"), {"task_ids": [task_id]}).fetchall()
        return bool(rows)


def _errbacks(body: Signature) -> list[Signature]:
    """The errbacks of a chord body (a chain's are on its first task, too)."""
    found = list(body.options.get("link_error") or [])
    tasks = body.get("kwargs", {}).get("tasks") if body.subtask_type == "chain" else None
    if tasks:
        first = maybe_signature(tasks[0])
        if first is not None:
            found += [eb for eb in first.options.get("link_error") or [] if eb not in found]
    return [sig for sig in (maybe_signature(eb) for eb in found) if sig is not None]


def _embedded_chain(body: bytes, content_type: str, accept: frozenset[str]) -> list[Any]:
    try:
        value = serialization.loads(body, content_type, accept)
        embed = value[2] if isinstance(value, list | tuple) and len(value) == 3 else {}
        return list((embed or {}).get("chain") or [])
    except Exception:
        return []


def _meta(row: tuple[Any, ...]) -> ResultMeta:
    values = list(row)
    for index in (3, 7):
        values[index] = None if values[index] is None else bytes(values[index])
    return ResultMeta(*values)


__all__ = ["ChordJoiner"]
