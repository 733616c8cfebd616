"""max_connections reached: clear errors (not hangs), running workers keep working on the
connections they hold, and everything recovers by itself when connections return."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from tests.faults.cluster import Cluster
from tests.faults.conftest import report, runs, wait_for_outcomes

pytestmark = pytest.mark.faults


def hog(cluster: Cluster) -> list[psycopg.Connection[Any]]:
    """Take every connection the server will give (bounded by max_connections = 60)."""
    held: list[psycopg.Connection[Any]] = []
    for _ in range(100):
        try:
            held.append(cluster.connect())
        except psycopg.OperationalError as exc:
            assert "too many clients" in str(exc) or "reserved" in str(exc), exc
            return held
    raise AssertionError("the server never refused a connection")


@pytest.fixture
def hogged(cluster: Cluster) -> Iterator[list[psycopg.Connection[Any]]]:
    held: list[psycopg.Connection[Any]] = []
    yield held
    for conn in held:
        conn.close()


def test_max_connections_reached(
    cluster: Cluster,
    fapp: Any,
    fschema: str,
    start_worker: Any,
    runlog: Any,
    hogged: list[psycopg.Connection[Any]],
) -> None:
    work = fapp.tasks["faultproj.work"]
    start_worker("-P", "threads", "-c", "2", "-n", "ex1@%h")
    assert work.delay(0).get(timeout=30) == 0
    observer = cluster.connect()
    hogged.append(observer)
    hogged.extend(hog(cluster))

    # a running worker keeps working on the connections it holds; so does a connected client
    during = [work.apply_async((n, 0), task_id=f"during-{n}").id for n in range(20)]
    got = wait_for_outcomes(cluster, fschema, during, 30, frozenset({"SUCCESS"}), observer)
    assert set(got) == set(during)

    # a new client gets a clear error, quickly
    fresh = Celery("fresh", broker=cluster.url(), celeriac_schema=fschema)
    began = time.monotonic()
    with pytest.raises(OperationalError, match="too many clients") as refused:
        fresh.send_task("faultproj.work", (1, 0), task_id="refused-1", retry=False)
    error_after = time.monotonic() - began
    assert cluster.password not in str(refused.value)
    # a new worker cannot start: it says why and exits non-zero
    late = start_worker("-P", "threads", "-c", "1", "-n", "ex2@%h", ready=False)
    late.wait_for_line("too many clients", timeout=60)
    assert late.proc.wait(30) != 0

    for conn in hogged:
        conn.close()
    released = time.monotonic()
    fresh.send_task("faultproj.work", (1, 0), task_id="after-1")
    recovery = time.monotonic() - released
    after = ["after-1"] + [work.apply_async((n, 0), task_id=f"after-{n}").id for n in range(2, 21)]
    got = wait_for_outcomes(cluster, fschema, during + after, 30, frozenset({"SUCCESS"}))
    fresh.close()
    ran = runs(runlog)
    report(
        "max-connections",
        hogged=len(hogged),
        sent=len(during) + len(after),
        ran=sum(ran[i] for i in during + after),
        ran_more_than_once=sum(1 for i in during + after if ran[i] > 1),
        outcomes_recorded=len(got),
        clear_error_after_s=error_after,
        recovery_s=recovery,
    )
    assert set(got) == set(during + after)
    assert error_after < 20
