"""Chords under kills: header tasks' worker SIGKILLed mid-chord and PostgreSQL restarted
(immediate) while chords join — every body still runs exactly once, with every result."""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest

from celeriac import chord
from tests.faults.cluster import Cluster
from tests.faults.conftest import report, runs, wait_for_outcomes

pytestmark = pytest.mark.faults

CHORDS, WIDTH = 20, 5


def test_chords_survive_a_killed_worker_and_a_crashed_server(
    cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, runlog: Any
) -> None:
    work, collect = fapp.tasks["faultproj.work"], fapp.tasks["faultproj.collect"]
    victim = start_worker("-P", "threads", "-c", "4", "-n", "chord-a@%h")
    start_worker("-P", "threads", "-c", "4", "-n", "chord-b@%h")
    bodies = [
        chord([work.s(n, 0.2) for n in range(WIDTH)], collect.s()).apply_async(task_id=f"body-{i}")
        for i in range(CHORDS)
    ]
    victim.wait_for_line("faultproj.work[", timeout=30)
    while len(runs(runlog)) < WIDTH * CHORDS // 4:
        time.sleep(0.05)
    victim.kill()  # SIGKILL, mid-chord: its running header tasks are cut off
    killed_at = time.monotonic()
    cluster.restart("immediate")  # and the server crashes while chords join
    start_worker("-P", "threads", "-c", "4", "-n", "chord-c@%h")
    ids = [body.id for body in bodies]
    got = wait_for_outcomes(cluster, fschema, ids, 90, frozenset({"SUCCESS", "FAILURE"}))
    recovery = time.monotonic() - killed_at
    ran = runs(runlog)
    # a body runs early now (it keeps its chord's place in the queue), so the kill can
    # cut one off on the victim too: like a cut-off header task (acks_late) it runs again
    lines = [line.rsplit(" ", 1) for line in runlog.read_text().splitlines()]
    on_victim = collections.Counter(
        task_id for task_id, node in lines if node.startswith("chord-a@")
    )
    headers = {task_id: count for task_id, count in ran.items() if task_id not in ids}
    report(
        "chords-under-kills",
        chords=CHORDS,
        header_tasks=CHORDS * WIDTH,
        header_runs=sum(headers.values()),
        headers_ran_more_than_once=sum(1 for c in headers.values() if c > 1),
        bodies_ran=sum(ran[i] for i in ids),
        bodies_ran_more_than_once=sum(1 for i in ids if ran[i] > 1),
        bodies_cut_off_on_the_victim=sum(1 for i in ids if ran[i] > 1 and on_victim[i]),
        outcomes_recorded=len(got),
        all_done_after_kill_s=recovery,
    )
    assert set(got) == set(ids) and set(got.values()) == {"SUCCESS"}
    again = [i for i in ids if ran[i] != 1]
    assert all(ran[i] == 2 and on_victim[i] == 1 for i in again), (
        "a chord body ran twice (other than a run cut off by the kill) or never",
        {i: (ran[i], on_victim[i]) for i in again},
    )
    assert [body.get(timeout=10) for body in bodies] == [sum(range(WIDTH))] * CHORDS
    assert len(headers) == CHORDS * WIDTH
