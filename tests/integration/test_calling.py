"""Calling tasks: apply_async options as stored rows and as the request a task sees."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from celeriac import states
from celeriac.exceptions import EncodeError, PayloadTooLarge
from tests.integration.inline_worker import job_rows, run_jobs


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_countdown_eta_expires_queue_priority_task_id_are_stored(app: Any) -> None:
    @app.task
    def noop() -> None:
        return None

    before = _now()
    noop.apply_async(countdown=60, task_id="t-countdown")
    eta = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    noop.apply_async(eta=eta, expires=30, queue="slow", priority=9, task_id="t-eta")
    rows = {row["task_id"]: row for row in job_rows(app)}
    assert set(rows) == {"t-countdown", "t-eta"}
    assert dt.timedelta(seconds=59) < rows["t-countdown"]["eta"] - before < dt.timedelta(seconds=62)
    assert rows["t-countdown"]["queue"] == "celery"
    assert rows["t-eta"]["eta"] == eta
    assert rows["t-eta"]["expires"] - before < dt.timedelta(seconds=32)
    assert (rows["t-eta"]["queue"], rows["t-eta"]["priority"]) == ("slow", 9)
    assert run_jobs(app) == 0  # nothing is due yet


def test_naive_eta_is_utc_and_iso_text_accepted(app: Any) -> None:
    @app.task
    def noop() -> None:
        return None

    noop.apply_async(eta=dt.datetime(2031, 5, 6, 7, 8, 9), task_id="naive")
    noop.apply_async(eta="2031-05-06T07:08:09+02:00", task_id="iso")
    rows = {row["task_id"]: row["eta"] for row in job_rows(app)}
    assert rows["naive"] == dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert rows["iso"] == dt.datetime(2031, 5, 6, 5, 8, 9, tzinfo=dt.UTC)


def test_headers_and_fields_are_readable_in_the_request(app: Any) -> None:
    @app.task(bind=True)
    def show(self: Any) -> dict[str, Any]:
        r = self.request
        return {
            "header": r.headers["tenant"],
            "attr": r.tenant,
            "id": r.id,
            "retries": r.retries,
            "queue": r.delivery_info["routing_key"],
            "priority": r.delivery_info["priority"],
            "timelimit": list(r.timelimit),
            "root_id": r.root_id,
            "origin": r.origin,
            "eager": r.is_eager,
        }

    result = show.apply_async(
        headers={"tenant": "acme"},
        task_id="with-headers",
        priority=4,
        time_limit=20,
        soft_time_limit=10,
    )
    assert run_jobs(app) == 1
    got = result.get(timeout=5)
    assert got["header"] == got["attr"] == "acme"
    assert got["id"] == got["root_id"] == "with-headers"
    assert (got["retries"], got["queue"], got["priority"]) == (0, "celery", 4)
    assert got["timelimit"] == [20, 10]
    assert got["origin"].startswith("gen") and got["eager"] is False


def test_soft_limit_above_hard_limit_is_refused(app: Any) -> None:
    @app.task
    def noop() -> None:
        return None

    with pytest.raises(ValueError, match="soft_time_limit"):
        noop.apply_async(time_limit=1, soft_time_limit=2)
    assert job_rows(app) == []


def test_ignore_result_get_returns_none_at_once(app: Any) -> None:
    @app.task
    def value() -> int:
        return 42

    @app.task(ignore_result=True)
    def ignored_by_task() -> int:
        return 42

    per_call = value.apply_async(ignore_result=True)
    per_task = ignored_by_task.delay()
    assert per_call.get(timeout=0.1) is None  # no wait: nothing will ever be stored
    assert per_task.get(timeout=0.1) is None
    assert run_jobs(app) == 2
    assert per_call.state == states.PENDING and per_task.state == states.PENDING


def test_send_task_by_name_needs_no_local_task(app: Any) -> None:
    result = app.send_task("elsewhere.defined", args=[1], kwargs={"b": 2}, queue="remote")
    (row,) = job_rows(app)
    assert (row["task_name"], row["queue"], row["task_id"]) == (
        "elsewhere.defined",
        "remote",
        result.id,
    )
    assert result.state == states.PENDING


def test_typing_checks_arguments_at_the_call_site(app: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def bound(self: Any, x: int) -> int:
        return x

    with pytest.raises(TypeError, match="add"):
        add.delay(1)
    with pytest.raises(TypeError):
        add.delay(1, 2, z=3)
    with pytest.raises(TypeError):
        bound.delay()
    assert job_rows(app) == []
    bound.delay(1)

    @app.task(typing=False)
    def loose(x: int) -> int:
        return x

    loose.delay()  # typing=False: no check, as in Celery
    assert len(job_rows(app)) == 2


def test_unserializable_arguments_fail_at_the_call_site(app: Any) -> None:
    @app.task
    def takes(x: Any) -> None:
        return None

    with pytest.raises(EncodeError, match="not JSON serializable"):
        takes.delay(object())
    with pytest.raises(TypeError):  # EncodeError is a TypeError, as kombu's
        takes.delay({1j})
    assert job_rows(app) == []


def test_payload_over_the_limit_is_refused(app: Any) -> None:
    app.conf.task_max_payload_size = 1000

    @app.task
    def takes(x: Any) -> None:
        return None

    with pytest.raises(PayloadTooLarge, match="task_max_payload_size"):
        takes.delay("x" * 2000)
    assert job_rows(app) == []
    takes.delay("x" * 10)
    assert len(job_rows(app)) == 1


def test_default_task_names_are_module_dot_function(app: Any) -> None:
    @app.task
    def named() -> None:
        return None

    @app.task(name="custom.name")
    def renamed() -> None:
        return None

    assert named.name == f"{__name__}.named"
    assert renamed.name == "custom.name"
    assert app.tasks["custom.name"] is renamed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"args": "text"}, "args must be a list or tuple"),
        ({"args": 5}, "args must be a list or tuple"),
        ({"kwargs": [("x", 1)]}, "keyword arguments must be a mapping"),
        ({"countdown": "soon"}, "countdown must be a number of seconds"),
        ({"time_limit": "long"}, "time_limit must be a number of seconds"),
        ({"eta": 12}, "eta must be a datetime"),
        ({"connection": object()}, "psycopg"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_call_options_are_type_errors_and_nothing_is_written(
    app: Any, call: dict[str, Any], message: str
) -> None:
    @app.task(typing=False)
    def takes(*args: Any, **kwargs: Any) -> None:
        return None

    with pytest.raises(TypeError, match=message):
        takes.apply_async(**call)
    assert job_rows(app) == []


def test_expired_task_is_revoked_without_running(app: Any) -> None:
    ran: list[int] = []

    @app.task
    def record() -> None:
        ran.append(1)

    result = record.apply_async(expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert run_jobs(app) == 1
    assert ran == []
    assert result.state == states.REVOKED
    assert "expired" in str(result.get(propagate=False))


def test_publishing_in_an_aborted_transaction_is_a_database_error(app: Any) -> None:
    from celeriac.exceptions import DatabaseError

    @app.task
    def noop() -> None:
        return None

    app.ensure_schema()
    with app.database.connection() as conn:
        conn.autocommit = False
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with pytest.raises(DatabaseError, match="aborted"):
            noop.apply_async(connection=conn)
        conn.rollback()
        conn.autocommit = True
    assert job_rows(app) == []
