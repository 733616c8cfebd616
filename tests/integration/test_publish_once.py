"""Publishing is idempotent by task id: a publish retried after its COMMIT reply was lost
queues nothing twice, and a task id that already has a result is not queued again.

The lost reply is real: the client talks to PostgreSQL through a TCP forwarder that, once
armed, lets the publish statement through and then cuts the connection instead of
passing the server's reply on — the server has committed, the client sees a broken
connection and retries (``task_publish_retry``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from celeriac import Celery, group, states
from celeriac.publish import Publisher
from tests.forward import Forwarder


class LostReply(Forwarder):
    """A forwarder to PostgreSQL that can drop the reply to the next publish into jobs (an
    INSERT, or a COPY's transaction: the reply to its COMMIT)."""

    def __init__(self, dsn: str) -> None:
        self.armed = threading.Event()
        self.cut = threading.Event()  # set when a reply was dropped
        super().__init__(dsn)

    def serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        self.sockets.append(upstream)
        seen = threading.Event()  # this connection sent the armed publish's last part
        threading.Thread(target=self._up, args=(client, upstream, seen), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client, seen), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, seen: threading.Event) -> None:
        copying = False  # a COPY into jobs (delay_many) is cut at its COMMIT's reply
        try:
            while data := client.recv(65536):
                if self.armed.is_set() and b"jobs" in data:
                    if b"INSERT INTO" in data:
                        self.armed.clear()
                        seen.set()
                    elif b"COPY" in data:
                        self.armed.clear()
                        copying = True
                if copying and b"COMMIT" in data:
                    seen.set()
                upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    def _down(self, upstream: socket.socket, client: socket.socket, seen: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if seen.is_set():  # the reply to the armed publish (sent after its commit)
                    break
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)
        if seen.is_set():
            self.cut.set()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


@pytest.fixture
def lossy(dsn: str) -> Iterator[LostReply]:
    proxy = LostReply(dsn)
    yield proxy
    proxy.close()


@pytest.fixture
def lossy_app(lossy: LostReply, dsn: str, schema: str) -> Iterator[Celery]:
    application = Celery("tests", broker=lossy.url, celeriac_schema=schema)
    application.task(name="t.noop")(lambda *args: None)
    application.ensure_schema()
    yield application
    application.close()


def _jobs(dsn: str, schema: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT task_id FROM {}.jobs ORDER BY id").format(sql.Identifier(schema))
        return [row[0] for row in conn.execute(query)]


def test_delay_retried_after_a_lost_commit_reply_queues_once(
    lossy: LostReply, lossy_app: Celery, dsn: str, schema: str
) -> None:
    noop = lossy_app.tasks["t.noop"]
    lossy.armed.set()
    result = noop.delay()
    assert lossy.cut.is_set(), "the forwarder did not cut the reply"
    assert _jobs(dsn, schema) == [result.id]


def test_delay_many_retried_after_a_lost_commit_reply_queues_once(
    lossy: LostReply, lossy_app: Celery, dsn: str, schema: str
) -> None:
    noop = lossy_app.tasks["t.noop"]
    lossy.armed.set()
    results = noop.delay_many([(i,) for i in range(500)])
    assert lossy.cut.is_set()
    assert _jobs(dsn, schema) == [r.id for r in results]


def test_delay_many_retry_skips_tasks_that_already_ran(
    lossy: LostReply, lossy_app: Celery, dsn: str, schema: str, monkeypatch: Any
) -> None:
    """The first try goes in by COPY, which cannot skip an id; the retry must not: by the
    time it runs, a worker may have run the committed jobs (rows gone, results stored)."""
    # the batch path, even if another test left a publish signal receiver connected
    monkeypatch.setattr(Publisher, "wants_messages", lambda self: False)
    noop = lossy_app.tasks["t.noop"]
    broker, publish_batch = lossy_app.broker, lossy_app.broker.publish_batch
    tries = []

    def run_them_first(batch: Any, **kwargs: Any) -> None:
        tries.append(kwargs["fresh"])
        if len(tries) == 2:  # the retry: what the first try committed has run meanwhile
            with psycopg.connect(dsn, autocommit=True) as conn:
                table = sql.Identifier(schema)
                ids = [
                    row[0]
                    for row in conn.execute(
                        sql.SQL("DELETE FROM {}.jobs RETURNING task_id").format(table)
                    )
                ]
                assert sorted(ids) == sorted(batch.task_ids)
            for task_id in ids:
                lossy_app.backend.store_state(task_id, states.SUCCESS, None)
        publish_batch(batch, **kwargs)

    broker.publish_batch = run_them_first  # type: ignore[method-assign]
    lossy.armed.set()
    noop.delay_many([(i,) for i in range(50)])
    assert lossy.cut.is_set()
    assert tries == [True, False]
    assert _jobs(dsn, schema) == []


def test_group_retried_after_a_lost_commit_reply_queues_once(
    lossy: LostReply, lossy_app: Celery, dsn: str, schema: str
) -> None:
    noop = lossy_app.tasks["t.noop"]
    lossy.armed.set()
    result = group(noop.s(i) for i in range(50)).apply_async()
    assert lossy.cut.is_set()
    assert _jobs(dsn, schema) == [r.id for r in result.results]


def test_a_task_id_with_a_result_is_not_queued_again(app: Any, dsn: str, schema: str) -> None:
    noop = app.task(name="t.noop")(lambda: None)
    app.backend.store_state("done-1", states.SUCCESS, None)
    noop.apply_async(task_id="done-1")
    noop.apply_async(task_id="new-1")
    assert _jobs(dsn, schema) == ["new-1"]


def test_a_queued_task_id_is_not_queued_twice(app: Any, dsn: str, schema: str) -> None:
    noop = app.task(name="t.noop")(lambda: None)
    noop.apply_async(task_id="once")
    noop.apply_async(task_id="once")
    group(noop.si().set(task_id=task_id) for task_id in ("once", "other")).apply_async()
    assert _jobs(dsn, schema) == ["once", "other"]


def test_publishing_twice_in_a_callers_transaction_neither_fails_nor_duplicates(
    app: Any, dsn: str, schema: str
) -> None:
    noop = app.task(name="t.noop")(lambda: None)
    app.ensure_schema()
    with psycopg.connect(dsn) as conn:
        noop.apply_async(task_id="tx-1", connection=conn)
        noop.apply_async(task_id="tx-1", connection=conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # transaction not aborted
    assert _jobs(dsn, schema) == ["tx-1"]


def test_one_frozen_errback_of_tasks_failing_together_is_queued_once(app: Any) -> None:
    from tests.integration.inline_worker import job_rows, run_jobs

    @app.task
    def fails(x: int) -> None:
        raise ValueError(x)

    @app.task
    def on_error(task_id: str) -> None:  # old style: sent as a task with the failed id
        pass

    errback = on_error.s()
    errback.freeze("errback-1")
    fails.apply_async((1,), link_error=errback)
    fails.apply_async((2,), link_error=errback)
    assert run_jobs(app) == 2  # one batch records both failures
    assert [row["task_id"] for row in job_rows(app)] == ["errback-1"]
