"""Losing a worker, a pool process or the database connections: nothing is lost.

The recovery times are printed (run with ``-s`` to see them), not asserted: the waits
below bound them generously.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from celeriac import states
from celeriac.exceptions import WorkerLostError
from tests.e2e.faultkit import Outage, job_rows, lines, wait_lines, wait_until

pytestmark = pytest.mark.e2e


def test_kill_whole_worker_rescued_by_another(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    victim = fworker("-c", "3", "-n", "victim@%h")
    early = tasks.block.delay(str(marker), str(gate))
    late = tasks.late_block.delay(str(marker), str(gate))
    late_reject = tasks.late_reject_block.delay(str(marker), str(gate))
    wait_lines(marker, 3)
    fworker("-c", "3", "-n", "rescuer@%h")  # idle: every job is running on the victim
    gate.touch()  # from now on any (re)run finishes at once
    killed = time.monotonic()
    victim.kill()  # SIGKILL the worker and its children
    lost = early.get(timeout=30, propagate=False)
    failed_after = time.monotonic() - killed
    assert isinstance(lost, WorkerLostError), lost
    assert early.state == states.FAILURE
    assert isinstance(late.get(timeout=30), int)
    assert isinstance(late_reject.get(timeout=30), int)
    rerun_after = time.monotonic() - killed
    assert len(lines(marker)) == 5  # the two acks_late tasks ran again, the early one not
    assert not job_rows(dsn, schema)
    print(
        f"\nKILL -9 of a worker: early-ack FAILURE after {failed_after:.2f}s, "
        f"acks_late re-run done after {rerun_after:.2f}s"
    )


def _child_pid(marker: Path, count: int) -> int:
    return int(wait_lines(marker, count)[count - 1])


def test_kill_pool_child(tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str) -> None:
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "1")
    # acks_late + reject_on_worker_lost: queued again, runs in the replacement child
    requeued = tasks.late_reject_block.delay(str(marker), str(gate))
    first = _child_pid(marker, 1)
    os.kill(first, signal.SIGKILL)
    second = _child_pid(marker, 2)
    assert second != first
    assert requeued.state == states.PENDING
    gate.touch()
    assert requeued.get(timeout=15) == second
    gate.unlink()
    # early ack, and acks_late alone: FAILURE WorkerLostError naming the signal
    for n, task in enumerate([tasks.block, tasks.late_block], start=3):
        result = task.delay(str(marker), str(gate))
        os.kill(_child_pid(marker, n), signal.SIGKILL)
        lost = result.get(timeout=15, propagate=False)
        assert isinstance(lost, WorkerLostError), lost
        assert "signal 9 (SIGKILL)" in str(lost)
    worker.wait_for_line("lost: Worker exited prematurely")
    # the pool replaced the child every time: the worker still runs tasks
    assert tasks.whoami.delay().get(timeout=15) not in {int(pid) for pid in lines(marker)}
    assert not job_rows(dsn, schema)
    assert worker.proc.poll() is None


def _kill_sessions(dsn: str, application: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application,),
        ).fetchall()
    return len(rows)


def test_database_connections_killed(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    """Every session of the worker (and its children) is terminated, three times: it
    reconnects, keeps its liveness, retries the outcome it could not write, and neither
    loses nor repeats anything."""
    marker, gate, order = tmp_path / "started", tmp_path / "gate", tmp_path / "order"
    node = f"db-{schema}@testhost"
    worker = fworker("-c", "2", "-n", node)
    assert tasks.whoami.delay().get(timeout=10)  # every connection of the worker is open
    running = [tasks.tracked.delay(str(marker), str(gate)) for _ in range(2)]
    wait_lines(marker, 2)
    queued = [tasks.record.delay(str(order), str(n)) for n in range(20)]
    cut = time.monotonic()
    for round_ in range(3):
        seen = len(worker.lines)
        assert _kill_sessions(dsn, f"celeriac worker {node}") >= (3 if round_ == 0 else 1)
        lost = worker.wait_for_line("worker connection lost", start=seen)
        worker.wait_for_line("worker connection re-established", start=lost)
    # tracked tasks store STARTED from the children, whose pooled sessions were cut too
    more = [tasks.tracked.delay(str(marker), str(gate)) for _ in range(4)]
    gate.touch()
    assert [r.get(timeout=30) for r in running + more] == ["tracked"] * 6
    assert [r.get(timeout=30) for r in queued] == [str(n) for n in range(20)]
    print(f"\nsessions killed 3 times: everything recorded {time.monotonic() - cut:.2f}s later")
    assert sorted(lines(order), key=int) == [str(n) for n in range(20)]
    assert len(lines(marker)) == 6  # nothing ran twice: the worker was never declared dead
    worker.wait_for_line("cannot record")  # the in-flight outcome was retried...
    assert "refused" not in worker.log  # ...and accepted, not fenced off
    assert "rescu" not in worker.log
    assert not job_rows(dsn, schema)
    assert worker.proc.poll() is None


def test_worker_declared_dead_registers_again(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    """A worker cut off long enough to be declared dead (simulated: its row is stopped)
    has its running jobs rescued; it notices, registers again, and its new jobs are safe."""
    marker, gate = tmp_path / "started", tmp_path / "gate"
    worker = fworker("-c", "2", "-n", "partitioned@%h")
    stale = tasks.block.delay(str(marker), str(gate))
    wait_lines(marker, 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.workers SET stopped_at = now() WHERE name LIKE 'partitioned@%%'"
            ).format(sql.Identifier(schema))
        )
    assert isinstance(stale.get(timeout=15, propagate=False), WorkerLostError)
    worker.wait_for_line("registering again")
    # a job claimed under the new registration outlives two maintenance rounds (2 s each)
    fresh = tasks.block.delay(str(marker), None, 4.5)
    assert fresh.get(timeout=20) == int(wait_lines(marker, 2)[1])
    gate.touch()
    worker.wait_for_line("refused")  # the stale attempt's own outcome was fenced off
    assert not job_rows(dsn, schema)


def test_claim_whose_reply_was_lost_is_released(
    tasks: Any, fworker: Any, tmp_path: Path, dsn: str, schema: str
) -> None:
    """A claim can commit and its reply die with the connection: the job is then marked
    running for a live worker that never got it. After a failed claim the worker looks
    for such jobs and releases them (simulated: a row claimed in its name by hand)."""
    order = tmp_path / "order"
    node = f"stray-{schema}@testhost"
    worker = fworker("-c", "1", "-n", node)
    stray = tasks.record.apply_async((str(order), "stray"), countdown=3600)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {s}.jobs SET state = 'running', attempt = 1, eta = now(), "
                "worker_id = (SELECT id FROM {s}.workers WHERE name = %s) WHERE task_id = %s"
            ).format(s=sql.Identifier(schema)),
            (node, stray.id),
        )
    seen = len(worker.lines)
    _kill_sessions(dsn, f"celeriac worker {node}")
    worker.wait_for_line("consumer: cannot claim jobs", start=seen)
    worker.wait_for_line("was claimed for this worker but never received; releasing it")
    assert stray.get(timeout=20) == "stray"
    assert lines(order) == ["stray"]


def test_worker_waits_for_an_unreachable_database(
    tasks: Any, fworker: Any, worker_env: dict[str, str], dsn: str
) -> None:
    outage = Outage(dsn)  # not serving yet
    worker_env["CELERIAC_TEST_DSN"] = outage.url
    try:
        worker = fworker("-c", "1", ready=False)
        worker.wait_for_line("cannot reach PostgreSQL")
        worker.wait_for_line("retry 2")
        outage.up()
        worker.wait_for_line(" ready.")
        assert tasks.whoami.delay().get(timeout=15)
    finally:
        outage.down()


def test_database_outage_loses_nothing(
    tasks: Any, fworker: Any, worker_env: dict[str, str], tmp_path: Path, dsn: str, schema: str
) -> None:
    """The database goes away for every connection of the worker (refused and reset, as
    in a server restart) while tasks run and wait: it retries, and when the database is
    back every task has run exactly once and every outcome is recorded."""
    marker, gate, order = tmp_path / "started", tmp_path / "gate", tmp_path / "order"
    outage = Outage(dsn)
    outage.up()
    worker_env["CELERIAC_TEST_DSN"] = outage.url
    try:
        worker = fworker("-c", "2", "-n", "outage@%h")
        assert tasks.whoami.delay().get(timeout=10)
        running = [tasks.tracked.delay(str(marker), str(gate)) for _ in range(2)]
        wait_lines(marker, 2)
        queued = [tasks.record.delay(str(order), str(n)) for n in range(10)]
        outage.down()
        cut = time.monotonic()
        worker.wait_for_line("worker connection lost")
        gate.touch()  # the running tasks end while the database is away
        worker.wait_for_line("cannot record")
        # down for about 5 s, longer than the rescuer's grace: heartbeats age meanwhile
        wait_until(lambda: worker.log.count("retrying in 2.0s") >= 2, 20, "a 5 s outage")
        outage.up()
        down_for = time.monotonic() - cut
        assert [r.get(timeout=30) for r in running] == ["tracked", "tracked"]
        assert [r.get(timeout=30) for r in queued] == [str(n) for n in range(10)]
        print(f"\noutage of {down_for:.2f}s: all done {time.monotonic() - cut:.2f}s after the cut")
        assert len(lines(marker)) == 2
        assert sorted(lines(order), key=int) == [str(n) for n in range(10)]
        assert "fencing token" not in worker.log  # no outcome was refused...
        assert "rescu" not in worker.log and "declared dead" not in worker.log  # ...or rescued
        assert not job_rows(dsn, schema)
    finally:
        outage.down()
