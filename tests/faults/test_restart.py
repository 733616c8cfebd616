"""PostgreSQL restarted (fast and immediate) while workers run acks_late tasks and a client
publishes: everybody reconnects by themselves, no publish is silently lost, every sent task
ends with a stored outcome."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from psycopg import sql

from celeriac.exceptions import OperationalError
from tests.faults.cluster import Cluster
from tests.faults.conftest import report, runs, wait_for_outcomes

pytestmark = pytest.mark.faults

TOTAL = 300


class Publisher(threading.Thread):
    """Publishes TOTAL tasks; a failed publish is retried with the same id (never dropped)."""

    def __init__(self, task: Any) -> None:
        super().__init__(daemon=True)
        self.task = task
        self.sent: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        for n in range(TOTAL):
            task_id = f"r-{n}"
            while True:
                try:
                    self.task.apply_async((n, 0.01), task_id=task_id)
                    break
                except OperationalError as exc:  # a clear error: the caller may retry
                    self.errors.append(str(exc))
                    time.sleep(0.2)
            self.sent.append(task_id)
            time.sleep(0.01)


def _first_outcome_after(cluster: Cluster, schema: str, since: Any) -> Any:
    with cluster.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT min(date_done) - %s FROM {}.results WHERE date_done > %s").format(
                sql.Identifier(schema)
            ),
            (since, since),
        ).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_loses_nothing(
    mode: str, cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, runlog: Any
) -> None:
    workers = [start_worker("-P", "threads", "-c", "4", "-n", f"r{i}@%h") for i in (1, 2)]
    publisher = Publisher(fapp.tasks["faultproj.work"])
    publisher.start()
    while len(publisher.sent) < TOTAL // 3:
        time.sleep(0.05)
    down = cluster.restart(mode)
    with cluster.connect() as conn:
        up_at = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    publisher.join(120)
    assert not publisher.is_alive(), "publisher stuck"
    got = wait_for_outcomes(cluster, fschema, publisher.sent, 60, frozenset({"SUCCESS"}))
    ran = runs(runlog)
    recovery = _first_outcome_after(cluster, fschema, up_at)
    # the client's own result path reconnected too
    assert fapp.AsyncResult(publisher.sent[-1]).get(timeout=30) == TOTAL - 1
    report(
        f"restart-{mode}",
        sent=len(publisher.sent),
        publish_errors=len(publisher.errors),
        ran=len(ran),
        ran_more_than_once=sum(1 for c in ran.values() if c > 1),
        outcomes_recorded=len(got),
        down_s=down,
        recovery_s=recovery.total_seconds() if recovery is not None else -1.0,
    )
    missing = sorted(set(publisher.sent) - set(got))
    assert not missing, f"{len(missing)} task(s) without outcome, e.g. {missing[:5]}"
    assert all(status == "SUCCESS" for status in got.values())
    assert all(ran[task_id] >= 1 for task_id in publisher.sent)
    for error in publisher.errors:
        assert "PostgreSQL" in error or "database" in error, error
    for worker in workers:
        assert worker.proc.poll() is None, worker.log


@pytest.mark.parametrize("outage", [0.0, 3.0])
def test_restart_under_running_early_ack_tasks(
    outage: float, cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, runlog: Any
) -> None:
    """Early-acked tasks running across a restart finish normally: the restart alone must
    not make a live worker look dead (which would fail them with WorkerLostError)."""
    for i in (1, 2):
        start_worker("-P", "threads", "-c", "4", "-n", f"e{i}@%h")
    early = fapp.tasks["faultproj.early"]
    ids = [early.apply_async((n, 2.0 + outage), task_id=f"e-{n}").id for n in range(8)]
    while len(runs(runlog)) < len(ids):
        time.sleep(0.05)
    began = time.monotonic()
    cluster.stop("immediate")
    time.sleep(outage)  # the fault itself: the server stays down this long
    cluster.start()
    down = time.monotonic() - began
    got = wait_for_outcomes(cluster, fschema, ids, 30, frozenset({"SUCCESS", "FAILURE"}))
    _report_early(f"restart-early-ack-down-{outage:g}s", ids, got, runlog, down)
    assert got == dict.fromkeys(ids, "SUCCESS")


@pytest.mark.parametrize("wal_rows", [0, 1_500_000])
def test_backend_crash_under_running_early_ack_tasks(
    wal_rows: int, cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, runlog: Any
) -> None:
    """One backend SIGKILLed: the postmaster resets every session and runs crash recovery
    (replaying ``wal_rows`` rows' worth of WAL keeps it refusing connections for a few
    seconds) without restarting itself, so every worker's liveness lock vanishes at once
    and ``pg_postmaster_start_time()`` does not change. Live workers must not be taken for
    dead: their running early-ack tasks finish normally."""
    for i in (1, 2):
        start_worker("-P", "threads", "-c", "4", "-n", f"c{i}@%h")
    with cluster.connect() as conn:
        conn.execute("CHECKPOINT")
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.filler AS SELECT g, repeat('x', 100) AS pad "
                "FROM generate_series(1, %s) AS g"
            ).format(sql.Identifier(fschema)),
            (wal_rows,),
        )
    early = fapp.tasks["faultproj.early"]
    ids = [early.apply_async((n, 4.0), task_id=f"c-{n}").id for n in range(8)]
    while len(runs(runlog)) < len(ids):
        time.sleep(0.05)
    with cluster.connect() as victim:
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        began = time.monotonic()
        os.kill(pid, signal.SIGKILL)
    cluster.wait_ready()
    down = time.monotonic() - began
    got = wait_for_outcomes(cluster, fschema, ids, 30, frozenset({"SUCCESS", "FAILURE"}))
    _report_early(f"backend-crash-early-ack-wal-{wal_rows}", ids, got, runlog, down)
    assert got == dict.fromkeys(ids, "SUCCESS")


def _report_early(name: str, ids: list[str], got: dict[str, str], runlog: Any, down: float) -> None:
    """The counts of an early-ack fault run."""
    ran = runs(runlog)
    report(
        name,
        sent=len(ids),
        ran=sum(ran.values()),
        ran_more_than_once=sum(1 for c in ran.values() if c > 1),
        outcomes_recorded=len(got),
        failed=sum(1 for s in got.values() if s == "FAILURE"),
        down_s=down,
    )
