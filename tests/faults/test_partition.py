"""A real network partition: a worker in a network namespace whose link to PostgreSQL is
cut (every packet dropped, both ways — TCP sessions hang rather than fail) while it runs
acks_late and early-ack tasks.

The worker on the host side takes it for dead and rescues its claims (acks_late: run
again; early ack: WorkerLostError); the partitioned worker notices on its own (it does not
hang on its dead sockets); once the link is back, its late outcomes are refused by the
fencing token and it works normally again under a new registration.

Two ways the far side is found dead, one test each:

- ``keepalive``: celeriac's sessions ask the server for TCP keepalives and a
  ``tcp_user_timeout`` (``celeriac_dead_connection_timeout``), so the server drops the
  partitioned worker's sessions and its liveness lock goes with them;
- ``heartbeat``: those are off, the server keeps the dead sessions (and the lock) and
  only the heartbeat's age (``worker_lost_timeout``) gives the worker away.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.faults.cluster import Cluster
from tests.faults.conftest import report, runs, wait_for_outcomes
from tests.faults.netns import Netns, sweep, unavailable

pytestmark = pytest.mark.faults

SLOW = 5.0  # seconds the partitioned worker's tasks run: the cut comes mid-run
TASKS = 4  # of each kind (acks_late, early ack) running on the partitioned worker
DURING = 20  # quick tasks published while the link is down (run by the host's worker)
AFTER = 8  # quick tasks for the partitioned worker once it is back


def stored(cluster: Cluster, schema: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each result's status, recording worker and time: what a late write would change."""
    with cluster.connect() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT task_id, status, worker, date_done FROM {}.results WHERE task_id = ANY(%s)"
            ).format(sql.Identifier(schema)),
            (ids,),
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    sweep()
    ns = Netns()
    try:
        ns.create()
        yield ns
    finally:
        ns.close()


@pytest.fixture(scope="module")
def cluster(netns: Netns) -> Iterator[Cluster]:
    """This module's own server: it also listens on the host's end of the veth pair."""
    server = Cluster(listen=("127.0.0.1", netns.near), hba=(str(netns.subnet),))
    try:
        server.init()
        server.start()
        with server.connect("postgres") as conn:
            conn.execute("CREATE DATABASE faults")
        yield server
    finally:
        server.destroy()


class Watch(threading.Thread):
    """Polls the server (every 0.1 s) for when the partitioned worker's last session is
    gone: the test's own observation of whether the server noticed the partition."""

    def __init__(self, cluster: Cluster, far: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.far = cluster, far
        self.began = time.monotonic()
        self.sessions_gone: float | None = None
        self.gone = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        with self.cluster.connect() as conn:
            while not self.done.wait(0.1):
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s", (self.far,)
                ).fetchone()
                if left is not None and left[0] == 0:
                    self.sessions_gone = time.monotonic() - self.began
                    self.gone.set()
                    return


# shorter than the defaults (10 s, 30 s) to keep the test short; to measure the defaults:
# FAULTS_HEARTBEAT=2 FAULTS_PARTITION_DEAD_AFTER=10 FAULTS_PARTITION_LOST_TIMEOUT=30
DEAD_AFTER = float(os.environ.get("FAULTS_PARTITION_DEAD_AFTER", "3"))
LOST_TIMEOUT = float(os.environ.get("FAULTS_PARTITION_LOST_TIMEOUT", "5"))


@pytest.mark.parametrize(
    ("path", "dead_after", "lost_timeout"),
    [("keepalive", DEAD_AFTER, 30.0), ("heartbeat", 0.0, LOST_TIMEOUT)],
)
def test_partitioned_worker(
    path: str,
    dead_after: float,
    lost_timeout: float,
    netns: Netns,
    cluster: Cluster,
    fapp: Any,
    fschema: str,
    start_worker: Any,
    runlog: Path,
    tmp_path: Path,
) -> None:
    env = {"FAULTS_DEAD_AFTER": str(dead_after), "FAULTS_LOST_TIMEOUT": str(lost_timeout)}
    far_env = {**env, "FAULTS_DSN": cluster.url(host=netns.near)}
    far = start_worker(
        "-P", "threads", "-c", str(2 * TASKS), "-n", "far@%h", env=far_env, wrap=netns.wrap()
    )
    # half the far runs end while the link is down (their outcomes wait in the worker),
    # half after it is back; all of them after the rescue
    gates = [str(tmp_path / "gate-during"), str(tmp_path / "gate-after")]
    late_task, early_task = fapp.tasks["faultproj.held_on"], fapp.tasks["faultproj.early_held_on"]
    late = [
        late_task.apply_async(("far@", gates[n % 2]), task_id=f"late-{n}").id for n in range(TASKS)
    ]
    early = [
        early_task.apply_async(("far@", gates[n % 2]), task_id=f"early-{n}").id
        for n in range(TASKS)
    ]
    for task_id in late + early:
        far.wait_for_line(f"{task_id}] received")
    near = start_worker("-P", "threads", "-c", "4", "-n", "near@%h", env=env)
    watch = Watch(cluster, netns.far)

    netns.cut()
    cut_at = time.monotonic()
    watch.start()
    work = fapp.tasks["faultproj.work"]
    during = [work.apply_async((n, 0.05), task_id=f"during-{n}").id for n in range(DURING)]
    rescued = near.wait_for_line("rescued", timeout=lost_timeout + 20)
    newer = wait_for_outcomes(cluster, fschema, late + early, 30, frozenset({"SUCCESS", "FAILURE"}))
    recorded = stored(cluster, fschema, late + early)
    all_rescued = time.monotonic() - cut_at
    Path(gates[0]).touch()
    noticed = None
    if dead_after:  # the far worker notices by itself, and keeps what it cannot record
        noticed = far.wait_for_line("worker connection lost", timeout=30)
        far.wait_for_line("cannot record", timeout=30)

    if dead_after:  # the server too drops the far worker's sessions
        assert watch.gone.wait(30), "the server kept the partitioned worker's sessions"
    server_noticed = watch.gone.is_set()
    netns.heal()
    healed_at = time.monotonic()
    Path(gates[1]).touch()
    for task_id in late + early:
        far.wait_for_line(f"{task_id}] refused", timeout=30)
    back = far.wait_for_line("worker connection re-established", timeout=30)
    watch.done.set()
    # the late outcomes overwrote nothing
    assert stored(cluster, fschema, late + early) == recorded

    near.stop()  # what comes now can only run on the returned worker
    after = [work.apply_async((n, 0.0), task_id=f"after-{n}").id for n in range(AFTER)]
    done = wait_for_outcomes(cluster, fschema, during + after, 30, frozenset({"SUCCESS"}))
    ran = runs(runlog)
    report(
        f"partition-{path}",
        sent=len(late) + len(early) + len(during) + len(after),
        ran=sum(ran.values()),
        ran_more_than_once=sum(1 for c in ran.values() if c > 1),
        outcomes_recorded=len(newer) + len(done),
        late_outcomes_refused=len(late) + len(early),
        server_dropped_sessions_s=-1.0 if watch.sessions_gone is None else watch.sessions_gone,
        rescued_s=near.times[rescued] - cut_at,
        all_outcomes_s=all_rescued,
        far_noticed_s=-1.0 if noticed is None else far.times[noticed] - cut_at,
        back_after_heal_s=far.times[back] - healed_at,
    )
    assert all(newer[i] == "SUCCESS" for i in late), newer
    assert all(newer[i] == "FAILURE" for i in early), newer
    assert all(fapp.AsyncResult(i).get(timeout=5).startswith("near@") for i in late)
    assert all(ran[i] == 2 for i in late) and all(ran[i] == 1 for i in early), ran
    assert len(done) == DURING + AFTER and all(ran[i] == 1 for i in during + after)
    assert sum(1 for line in far.lines[back:] if "after-" in line and "received" in line) == AFTER
    # keepalive: found by its lock's disappearance, long before its heartbeat timed out;
    # heartbeat: the server kept the dead sessions (and the lock) until the link was back
    assert server_noticed == bool(dead_after)
    assert near.times[rescued] - cut_at < lost_timeout or not dead_after
