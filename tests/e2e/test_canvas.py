"""Chains, groups and chords with real workers: Celery's results, order and failure rules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import chain, chord, group, states
from celeriac.exceptions import ChordError

pytestmark = pytest.mark.e2e


@pytest.fixture
def tasks(proj_app: Any) -> Any:
    import canvas_tasks  # type: ignore[import-not-found]
    import proj  # type: ignore[import-not-found]

    class Tasks:
        add = proj.add
        fail = proj.fail
        sleep_then = proj.sleep_then
        late_sleep = proj.late_sleep
        tsum = canvas_tasks.tsum
        mul = canvas_tasks.mul
        identity = canvas_tasks.identity
        collect = canvas_tasks.collect
        on_error = canvas_tasks.on_error
        on_error_old = canvas_tasks.on_error_old
        record = canvas_tasks.record
        record_once_queued = canvas_tasks.record_once_queued

    return Tasks


def worker_args(*extra: str) -> tuple[str, ...]:
    return ("-I", "canvas_tasks", *extra)


def wait_for_lines(path: Path, count: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} has fewer than {count} lines")


# -- chains ---------------------------------------------------------------------------------
def test_chain_prepends_each_result_and_links_parents(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    result = (tasks.add.s(2, 2) | tasks.add.s(4) | tasks.mul.s(10)).apply_async()
    assert result.get(timeout=10) == 80
    assert result.parent.get(timeout=5) == 8
    assert result.parent.parent.get(timeout=5) == 4
    assert result.parent.parent.parent is None
    # the message carried the chain; each step's parent and root are recorded
    first = result.parent.parent
    assert result.parent.app.backend.get(result.parent.id).parent_id == first.id
    assert result.app.backend.get(result.id).root_id == first.id


def test_chain_failure_stops_and_marks_the_rest(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(*worker_args("-c", "2"))
    log = tmp_path / "errbacks"
    workflow = chain(tasks.add.s(1, 1), tasks.fail.si("boom"), tasks.add.s(1), tasks.add.s(2))
    workflow.link_error(tasks.on_error_old.s(str(log)))
    result = workflow.apply_async()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=10)
    chain_states = [result.parent.parent.parent, result.parent.parent, result.parent, result]
    assert [r.state for r in chain_states] == [
        states.SUCCESS,
        states.FAILURE,
        states.FAILURE,
        states.FAILURE,
    ]
    assert isinstance(result.result, ValueError) and str(result.result) == "boom"
    # the chain's link_error is on every step, and fires once: for the step that failed
    assert wait_for_lines(log, 1) == [f"old {result.parent.parent.id}"]
    time.sleep(0.3)
    assert len(log.read_text().splitlines()) == 1


def test_chain_link_runs_after_the_last_step(tasks: Any, start_worker: Any, tmp_path: Path) -> None:
    start_worker(*worker_args("-c", "2"))
    log = tmp_path / "done"
    workflow = tasks.add.s(1, 2) | tasks.add.s(3)
    workflow.link(tasks.record.s(str(log)))
    assert workflow.delay().get(timeout=10) == 6
    assert wait_for_lines(log, 1) == ["6"]


# -- groups ---------------------------------------------------------------------------------
def test_group_results_in_group_order_in_one_round_trip(
    tasks: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_worker(*worker_args("-c", "3"))
    broker = tasks.add.app.broker
    calls: list[int] = []
    publish = broker.publish
    monkeypatch.setattr(
        broker,
        "publish",
        lambda messages, **kw: (calls.append(len(messages)), publish(messages, **kw)),
    )
    # the first member sleeps longest: it ends last but stays first
    members = [tasks.sleep_then.s(0.6 - 0.2 * i, i) for i in range(3)]
    result = group(members).apply_async()
    assert calls == [3]
    assert result.get(timeout=10) == [0, 1, 2]
    assert result.ready() and result.successful() and result.completed_count() == 3
    assert [r.app.backend.get(r.id).group_id for r in result.results] == [result.id] * 3


def test_group_with_a_failure_and_saved_restore(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    result = group(tasks.add.s(1, 1), tasks.fail.si("nope")).apply_async()
    with pytest.raises(ValueError, match="nope"):
        result.get(timeout=10)
    assert result.join(timeout=5, propagate=False)[0] == 2
    assert result.failed() and not result.successful()
    result.save()
    restored = type(result).restore(result.id, app=tasks.add.app)
    assert restored is not None and [r.id for r in restored] == [r.id for r in result]


# -- chords ---------------------------------------------------------------------------------
def test_chord_header_runs_in_parallel(tasks: Any, start_worker: Any, tmp_path: Path) -> None:
    start_worker(*worker_args("-c", "4"))
    tasks.add.delay(0, 0).get(timeout=10)  # the pool is warm
    marker = tmp_path / "pids"
    started = time.monotonic()
    header = [tasks.sleep_then.s(1, i, str(marker)) for i in range(4)]
    result = chord(header, tasks.tsum.s()).apply_async()
    assert result.get(timeout=10) == 6
    elapsed = time.monotonic() - started
    assert len(set(marker.read_text().split())) == 4  # four processes at once
    assert elapsed < 3.5  # four 1 s tasks, joined at once: well under 4 s


def test_group_piped_into_task_is_a_chord(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    workflow = group(tasks.add.s(i, i) for i in range(5)) | tasks.tsum.s()
    result = workflow.apply_async()
    assert result.get(timeout=10) == 20
    assert [r.get(timeout=5) for r in result.parent.results] == [0, 2, 4, 6, 8]


def test_chord_body_gets_header_results_in_header_order(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(*worker_args("-c", "3"))
    log = tmp_path / "body"
    header = [tasks.sleep_then.s(0.5 - 0.1 * i, f"r{i}") for i in range(4)]
    result = chord(header)(tasks.collect.s(str(log)))
    assert result.get(timeout=10) == ["r0", "r1", "r2", "r3"]


def test_chord_header_failure_gives_body_chord_error_and_errbacks(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(*worker_args("-c", "2"))
    log = tmp_path / "errbacks"
    body = tasks.tsum.s()
    body.link_error(tasks.on_error.s(str(log)))  # new style: (request, exc, traceback)
    body.link_error(tasks.on_error_old.s(str(log)))  # old style: (task_id,)
    marker = tmp_path / "late"
    header = [tasks.add.s(1, 1), tasks.fail.si("bad part"), tasks.sleep_then.s(0.3, 1, str(marker))]
    result = chord(header, body).apply_async()
    error = result.get(timeout=10, propagate=False)
    assert isinstance(error, ChordError) and "bad part" in str(error)
    assert result.state == states.FAILURE
    with pytest.raises(ValueError, match="bad part"):
        result.get(timeout=1)  # as Celery: get() follows parents, raising the header's error
    assert marker.exists()  # other header tasks still ran
    lines = sorted(wait_for_lines(log, 2))
    assert lines[0].startswith(f"new {result.id} ChordError Dependency ")
    assert "raised ValueError('bad part')" in lines[0]
    assert lines[1] == f"old {result.id}"


def test_chord_inside_chain_and_group_inside_chain(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    inner = chord([tasks.add.s(1), tasks.add.s(2)], tasks.tsum.s())
    assert chain(tasks.add.s(1, 1), inner, tasks.add.s(10)).apply_async().get(timeout=10) == 17
    upgraded = chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.add.s(2)), tasks.tsum.s())
    assert upgraded.apply_async().get(timeout=10) == 7
    last = chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.add.s(2))).apply_async()
    assert last.get(timeout=10) == [3, 4]
    assert last.parent.get(timeout=5) == 2


def test_chain_inside_chord_header_failing_early_still_joins(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    header = [chain(tasks.fail.si("early"), tasks.add.s(1)), tasks.add.s(2, 2)]
    result = chord(header, tasks.tsum.s()).apply_async()
    error = result.get(timeout=10, propagate=False)
    assert isinstance(error, ChordError) and "early" in str(error)
    ok = chord([chain(tasks.add.s(1, 1), tasks.add.s(1)), tasks.add.s(2, 2)], tasks.tsum.s())
    assert ok.apply_async().get(timeout=10) == 7


def test_two_hundred_chords_on_two_workers_run_each_body_once(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(*worker_args("-c", "4", "-n", "one@%h"))
    start_worker(*worker_args("-c", "4", "-n", "two@%h"))
    log = tmp_path / "bodies"
    results = [
        chord([tasks.add.s(n, i) for i in range(10)], tasks.collect.s(str(log))).apply_async()
        for n in range(200)
    ]
    for n, result in enumerate(results):
        assert result.get(timeout=60) == [n + i for i in range(10)]
    bodies = log.read_text().splitlines()
    assert len(bodies) == 200  # every body exactly once
    assert len(set(bodies)) == 200
    with tasks.add.app.database.connection() as conn:
        left = conn.execute(f'SELECT count(*) FROM "{_schema(tasks)}".chords')
        assert left.fetchone()[0] == 0


def _schema(tasks: Any) -> str:
    return str(tasks.add.app.database.schema)


def test_killed_header_task_is_rescued_and_joins_once(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    marker, log = tmp_path / "runs", tmp_path / "bodies"
    first = start_worker(*worker_args("-c", "2", "-n", "first@%h"))
    # both header tasks are acks_late: whichever was running goes back to the queue
    # the first run outlasts any delay before the kill, however loaded the machine; the
    # rerun ends at once
    header = [tasks.late_sleep.s(60.0, str(marker), 0.0), tasks.late_sleep.s(0.0)]
    result = chord(header, tasks.collect.s(str(log))).apply_async()
    first.wait_for_line("late_sleep")
    while not marker.exists():
        time.sleep(0.02)
    first.kill()
    start_worker(*worker_args("-c", "2", "-n", "second@%h"))
    assert result.get(timeout=30) == ["done", "done"]
    assert len(marker.read_text().splitlines()) == 2  # cut off once, run again
    assert len(wait_for_lines(log, 1)) == 1


# -- map, starmap, chunks -------------------------------------------------------------------
def test_map_starmap_and_chunks(tasks: Any, start_worker: Any) -> None:
    start_worker(*worker_args("-c", "2"))
    assert tasks.add.starmap([(1, 2), (3, 4)]).delay().get(timeout=10) == [3, 7]
    assert tasks.identity.map([1, "a", None]).delay().get(timeout=10) == [1, "a", None]
    result = tasks.add.chunks(zip(range(10), range(10), strict=True), 3).apply_async()
    assert result.get(timeout=10) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]


# -- revoke ---------------------------------------------------------------------------------
def test_revoking_a_chain_reaches_every_step(tasks: Any, start_worker: Any) -> None:
    result = chain(tasks.add.s(1, 1), tasks.add.s(1), tasks.add.s(1)).apply_async()
    result.revoke()  # no worker yet: the first step waits, the others don't exist yet
    steps = [result.parent.parent, result.parent, result]
    assert [r.state for r in steps] == [states.REVOKED] * 3
    start_worker(*worker_args("-c", "1"))
    assert tasks.add.delay(2, 2).get(timeout=10) == 4  # the worker ran nothing revoked
    assert [r.state for r in steps] == [states.REVOKED] * 3


def test_revoking_a_chord_reaches_header_and_body(tasks: Any) -> None:
    result = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.tsum.s()).apply_async()
    result.revoke()
    assert [r.state for r in result.parent.results] == [states.REVOKED] * 2
    assert result.state == states.REVOKED
    with tasks.add.app.database.connection() as conn:
        left = conn.execute(f'SELECT count(*) FROM "{_schema(tasks)}".chords').fetchone()
    assert left is not None and left[0] == 0


def test_revoking_a_running_chain_stops_it_after_the_running_step(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(*worker_args("-c", "1"))
    marker = tmp_path / "started"
    workflow = chain(tasks.sleep_then.s(0.5, 1, str(marker)), tasks.add.s(1), tasks.add.s(1))
    result = workflow.apply_async()
    first = result.parent.parent
    while not marker.exists():
        time.sleep(0.02)
    result.revoke()  # the first step runs on; the others never will
    assert first.get(timeout=10) == 1
    assert result.get(timeout=10, propagate=False).__class__.__name__ == "TaskRevokedError"
    assert [r.state for r in (first, result.parent, result)] == [
        states.SUCCESS,
        states.REVOKED,
        states.REVOKED,
    ]


def test_killed_early_acked_header_task_fails_the_chord_once(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    marker, log = tmp_path / "started", tmp_path / "errbacks"
    first = start_worker(*worker_args("-c", "1", "-n", "first@%h"))
    body = tasks.tsum.s().on_error(tasks.on_error_old.s(str(log)))
    result = chord([tasks.sleep_then.s(30, 1, str(marker))], body).apply_async()
    while not marker.exists():
        time.sleep(0.02)
    first.kill()  # not acks_late: the rescuer records WorkerLostError for it
    start_worker(*worker_args("-c", "1", "-n", "second@%h"))
    error = result.get(timeout=30, propagate=False)
    assert isinstance(error, ChordError) and "WorkerLostError" in str(error)
    assert wait_for_lines(log, 1) == [f"old {result.id}"]
    time.sleep(0.5)
    assert len(log.read_text().splitlines()) == 1


# -- claim order --------------------------------------------------------------------------
def test_a_chord_body_runs_before_later_requests_work(
    tasks: Any, start_worker: Any, tmp_path: Path
) -> None:
    """Three requests sent at once, each a chord of two parts; one slot, no prefetch. A
    request's body is published after the later requests' parts, yet runs before the rest
    of the next request: it keeps its request's place in the queue. (The first part of a
    request waits until the previous body is queued, so the test never depends on how
    fast the worker records an outcome.)"""
    log = str(tmp_path / "order")
    bodies: list[Any] = []
    for name in "abc":
        first = (
            tasks.record.s(f"{name}0", log)
            if not bodies
            else tasks.record_once_queued.s(f"{name}0", bodies[-1].id, log)
        )
        header = [first, tasks.record.s(f"{name}1", log)]
        bodies.append(chord(header)(tasks.collect.s(log)))
    start_worker(*worker_args("-c", "1", "--prefetch-multiplier", "1"))
    for body in bodies:
        body.get(timeout=30)
    lines = (tmp_path / "order").read_text().splitlines()
    order = [line if line.startswith("'") else line.split(" ", 1)[1] for line in lines]
    position = {line: index for index, line in enumerate(order)}
    assert len(order) == 9, order
    # (before: every body ran after all six parts)
    assert position["['a0', 'a1']"] < position["'b1'"], order
    assert position["['b0', 'b1']"] < position["'c1'"], order
