"""Bad input never crashes or wedges a worker, and is never dropped silently."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from celeriac import states
from celeriac.exceptions import DecodeError, EncodeError, NotRegistered
from tests.e2e.faultkit import job_rows, result_row

pytestmark = pytest.mark.e2e


def test_unknown_task_name(proj_app: Any, tasks: Any, fworker: Any) -> None:
    worker = fworker("-c", "1")
    result = proj_app.send_task("nobody.knows.this", args=(1,))
    with pytest.raises(NotRegistered, match=r"nobody\.knows\.this"):
        result.get(timeout=10)
    assert result.state == states.FAILURE
    worker.wait_for_line("Received unregistered task of type 'nobody.knows.this'")
    assert tasks.whoami.delay().get(timeout=10)
    assert worker.proc.poll() is None


def _insert_job(dsn: str, schema: str, content_type: str, body: bytes) -> str:
    task_id = str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.jobs (task_id, task_name, queue, content_type, headers, body) "
                "VALUES (%s, 'faults_tasks.whoami', 'celery', %s, '{{}}', %s)"
            ).format(sql.Identifier(schema)),
            (task_id, content_type, body),
        )
        conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(f"celeriac_jobs.{schema}")))
    return task_id


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b"\xff{not json", "DecodeError"),
        ("application/x-python-serialize", b"\x80\x04N.", "ContentDisallowed"),
    ],
)
def test_undecodable_body_goes_to_dead_letter(
    content_type: str,
    body: bytes,
    reason: str,
    proj_app: Any,
    tasks: Any,
    fworker: Any,
    dsn: str,
    schema: str,
) -> None:
    worker = fworker("-c", "1")
    task_id = _insert_job(dsn, schema, content_type, body)
    result = proj_app.AsyncResult(task_id)
    value = result.get(timeout=10, propagate=False)
    assert result.state == states.FAILURE
    assert type(value).__name__ == reason or isinstance(value, DecodeError)
    rows = job_rows(dsn, schema)
    assert [(r["task_id"], r["state"]) for r in rows] == [(task_id, "dead")]
    assert reason in rows[0]["error"]
    worker.wait_for_line("moved to the dead-letter state")
    assert tasks.whoami.delay().get(timeout=10)  # still running, still claiming
    assert worker.proc.poll() is None


def test_unserializable_return_value(tasks: Any, fworker: Any) -> None:
    fworker("-c", "1")
    result = tasks.unserializable.delay()
    with pytest.raises(EncodeError, match="object"):
        result.get(timeout=10)
    assert result.state == states.FAILURE


def test_outcome_with_nul_characters(tasks: Any, fworker: Any, dsn: str, schema: str) -> None:
    """PostgreSQL text cannot hold NUL: the traceback is escaped, the worker goes on."""
    worker = fworker("-c", "1")
    result = tasks.nul_failure.delay()
    with pytest.raises(ValueError, match="a NUL"):
        result.get(timeout=10)
    row = result_row(dsn, schema, result.id)
    assert row is not None and "\\x00" in row["traceback"]
    assert tasks.whoami.delay().get(timeout=10)
    assert worker.proc.poll() is None


def test_outcome_the_database_refuses(tasks: Any, fworker: Any, dsn: str, schema: str) -> None:
    """A callback the database cannot store (a NUL in its queue name) must not wedge the
    worker's writes: the task ends FAILURE saying why, and the worker carries on."""
    worker = fworker("-c", "1")
    result = tasks.whoami.apply_async(link=tasks.whoami.si().set(queue="bad\x00queue"))
    with pytest.raises(EncodeError, match="could not be recorded"):
        result.get(timeout=15)
    worker.wait_for_line("the database refused the outcome")
    assert tasks.whoami.delay().get(timeout=10)
    assert not job_rows(dsn, schema)


def test_error_in_a_success_handler(proj_app: Any, tasks: Any, fworker: Any) -> None:
    """An exception outside the task body (here: building a callback) is a FAILURE with
    that exception; it does not cost the pool process (which would read WorkerLostError)."""
    worker = fworker("-c", "1")
    pid = tasks.whoami.delay().get(timeout=10)
    result = tasks.whoami.apply_async(link=tasks.whoami.si().set(priority=99999))
    with pytest.raises(ValueError, match="priority must be an integer"):
        result.get(timeout=10)
    worker.wait_for_line("INTERNAL ERROR")
    assert tasks.whoami.delay().get(timeout=10) == pid  # the same child
