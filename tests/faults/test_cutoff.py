"""A worker cut off from the database (its sessions killed with pg_terminate_backend and
its role unable to log in for a while): its claims are rescued by another worker, and when
it comes back its late results are refused by the fencing token."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from tests.faults.cluster import Cluster
from tests.faults.conftest import report, runs, wait_for_outcomes

pytestmark = pytest.mark.faults

SLOW = 6.0  # how long the cut-off worker's runs take: longer than detection + rescue


@pytest.fixture
def role(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A login role for the worker to be cut off (superuser: it migrates and listens)."""
    name, password = f"cut_{secrets.token_hex(4)}", "pw-" + secrets.token_hex(8)
    with cluster.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    yield name, password
    with cluster.connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def cut_off(cluster: Cluster, role: str) -> int:
    """Forbid the role to log in and kill its sessions; return how many were killed."""
    with cluster.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        ).fetchall()
    return len(rows)


def reconnect(cluster: Cluster, role: str) -> None:
    with cluster.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))


def stored(cluster: Cluster, schema: str, task_id: str) -> tuple[Any, ...]:
    with cluster.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT status, worker, date_done FROM {}.results WHERE task_id = %s").format(
                sql.Identifier(schema)
            ),
            (task_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_cut_off_worker_is_rescued_and_fenced(
    cluster: Cluster,
    fapp: Any,
    fschema: str,
    start_worker: Any,
    runlog: Any,
    role: tuple[str, str],
) -> None:
    name, password = role
    a_env = {"FAULTS_DSN": cluster.url(user=name, password=password)}
    a = start_worker("-P", "threads", "-c", "2", "-n", "cut-a@%h", env=a_env)
    late = fapp.tasks["faultproj.slow_on"].apply_async(("cut-a@", SLOW), task_id="late-1")
    early = fapp.tasks["faultproj.early_slow_on"].apply_async(("cut-a@", SLOW), task_id="early-1")
    a.wait_for_line("late-1] received")
    a.wait_for_line("early-1] received")
    b = start_worker("-P", "threads", "-c", "2", "-n", "cut-b@%h")
    killed = cut_off(cluster, name)
    cut_at = time.monotonic()
    b.wait_for_line("rescued", timeout=30)
    assert late.get(timeout=30).startswith("cut-b@")  # the newer attempt ran on b
    recovery = time.monotonic() - cut_at
    assert early.status == "FAILURE" and "WorkerLostError" in repr(early.result)
    newer = {key: stored(cluster, fschema, key) for key in ("late-1", "early-1")}
    reconnect(cluster, name)
    a.wait_for_line("late-1] refused", timeout=30)
    a.wait_for_line("early-1] refused", timeout=30)
    # the late outcomes did not overwrite the newer ones
    assert {key: stored(cluster, fschema, key) for key in newer} == newer
    assert fapp.AsyncResult("late-1").get(timeout=5).startswith("cut-b@")
    ran = runs(runlog)
    report(
        "cutoff-fencing",
        sessions_killed=killed,
        sent=2,
        ran=sum(ran.values()),
        ran_more_than_once=sum(1 for c in ran.values() if c > 1),
        outcomes_recorded=len(newer),
        late_outcomes_refused=2,
        recovery_s=recovery,
    )
    assert ran["late-1"] == 2 and ran["early-1"] == 1  # acks_late: again; early: at most once
    _after_return(cluster, fapp, fschema, runlog, a)


def _after_return(cluster: Cluster, fapp: Any, schema: str, runlog: Any, a: Any) -> None:
    """Once back, the cut-off worker works normally: nothing it claims now is rescued."""
    a.wait_for_line("ready", timeout=5)
    work = fapp.tasks["faultproj.work"]
    ids = [work.apply_async((n, 0.3), task_id=f"after-{n}").id for n in range(16)]
    got = wait_for_outcomes(cluster, schema, ids, 60, frozenset({"SUCCESS"}))
    ran = runs(runlog)
    twice = [task_id for task_id in ids if ran[task_id] > 1]
    by_a = sum(1 for line in a.lines if "after-" in line and "received" in line)
    report(
        "cutoff-after-return",
        sent=len(ids),
        ran=sum(ran[i] for i in ids),
        ran_more_than_once=len(twice),
        outcomes_recorded=len(got),
        received_by_returned_worker=by_a,
    )
    assert len(got) == len(ids)
    assert not twice, f"ran twice after the worker came back: {twice}"
