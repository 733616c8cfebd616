"""Celery task API with real workers: retry(throw=False), replace(), add_to_chord()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celeriac import chain, chord, group, states

pytestmark = pytest.mark.e2e

WORKER = ("-I", "canvas_tasks", "-I", "compat_tasks", "-c", "2")


@pytest.fixture
def t(proj_app: Any) -> Any:
    import canvas_tasks  # type: ignore[import-not-found]
    import compat_tasks  # type: ignore[import-not-found]
    import proj  # type: ignore[import-not-found]

    class Tasks:
        add = proj.add
        fail = proj.fail
        mul = canvas_tasks.mul
        tsum = canvas_tasks.tsum
        collect = canvas_tasks.collect
        record = canvas_tasks.record
        retry_quietly = compat_tasks.retry_quietly
        replace_with_chain = compat_tasks.replace_with_chain
        replace_with_group = compat_tasks.replace_with_group
        replace_with_task = compat_tasks.replace_with_task
        grow_chord = compat_tasks.grow_chord
        report_progress = compat_tasks.report_progress

    return Tasks


# -- retry(throw=False) ------------------------------------------------------------------
def test_retry_without_throw_schedules_the_retry_and_the_run_succeeds(
    t: Any, start_worker: Any, proj_app: Any
) -> None:
    worker = start_worker(*WORKER)
    result = t.retry_quietly.delay(1)
    # Celery: this run is marked successful (it returned after retry()), and the retry,
    # already published, runs later under the same id with one more retry
    first = worker.wait_for_line(f"[{result.id}] succeeded")
    assert "'first 1'" in worker.lines[first]
    second = worker.wait_for_line(f"[{result.id}] succeeded", start=first + 1)
    assert "'retry 1 2'" in worker.lines[second]
    worker.stop()  # a warm shutdown writes every outcome logged so far
    final = proj_app.AsyncResult(result.id)
    assert final.get(timeout=10) == "retry 1 2"
    assert proj_app.backend.get(result.id).retries == 1


def test_retry_without_throw_keeps_the_chain(t: Any, start_worker: Any, tmp_path: Path) -> None:
    start_worker(*WORKER)
    log = tmp_path / "callbacks"
    result = (t.retry_quietly.s(5) | t.record.s(str(log))).apply_async()
    assert result.get(timeout=15) in ("first 5", "retry 1 6")
    # Celery: both runs continue the chain (the retry carries it)
    from tests.e2e.test_canvas import wait_for_lines

    assert sorted(wait_for_lines(log, 2)) == ["'first 5'", "'retry 1 6'"]


# -- replace() ------------------------------------------------------------------------------
def test_replace_with_a_chain_in_the_middle_of_a_chain(t: Any, start_worker: Any) -> None:
    start_worker(*WORKER)
    result = chain(t.add.s(1, 1), t.replace_with_chain.s(), t.add.s(5)).apply_async()
    assert result.get(timeout=15) == 35  # (2 + 1) * 10 + 5
    replaced = result.parent
    assert replaced.get(timeout=5) == 30  # the original id holds the replacement's result
    assert replaced.parent.get(timeout=5) == 2
    assert replaced.state == states.SUCCESS


def test_replace_with_a_group_in_a_chain(t: Any, start_worker: Any) -> None:
    start_worker(*WORKER)
    result = chain(t.add.s(1, 1), t.replace_with_group.s(), t.tsum.s()).apply_async()
    assert result.get(timeout=15) == 7  # tsum([2 + 1, 2 + 2])
    assert result.parent.get(timeout=5) == [3, 4]


def test_replaced_task_result_and_callbacks(
    t: Any, start_worker: Any, tmp_path: Path, proj_app: Any
) -> None:
    start_worker(*WORKER)
    log = tmp_path / "callbacks"
    result = t.replace_with_task.apply_async((4,), link=t.record.s(str(log)))
    assert result.get(timeout=15) == 12
    from tests.e2e.test_canvas import wait_for_lines

    assert wait_for_lines(log, 1) == ["12"]  # the callback moved to the replacement
    assert proj_app.backend.get(result.id).name == "canvas_tasks.mul"


def test_replace_inside_a_chord_header(t: Any, start_worker: Any) -> None:
    start_worker(*WORKER)
    header = [t.replace_with_chain.s(1), t.replace_with_group.s(0), t.add.s(2, 2)]
    result = chord(header, t.collect.s("/dev/null")).apply_async()
    # the replaced members count for the chord only when their replacements end
    assert result.get(timeout=15) == [20, [1, 2], 4]


def test_replace_inside_a_group(t: Any, start_worker: Any) -> None:
    start_worker(*WORKER)
    result = group(t.replace_with_task.s(2), t.add.s(1, 1)).apply_async()
    assert result.get(timeout=15) == [6, 2]


# -- add_to_chord() ------------------------------------------------------------------------
def test_add_to_chord_extends_the_header(t: Any, start_worker: Any, tmp_path: Path) -> None:
    start_worker(*WORKER)
    log = tmp_path / "bodies"
    result = chord([t.grow_chord.s(1), t.add.s(2, 2)], t.collect.s(str(log))).apply_async()
    assert result.get(timeout=15) == [1, 4, 100]
    from tests.e2e.test_canvas import wait_for_lines

    assert len(wait_for_lines(log, 1)) == 1  # the body ran once


def test_add_to_chord_outside_a_chord_fails_the_task(t: Any, start_worker: Any) -> None:
    start_worker(*WORKER)
    with pytest.raises(ValueError, match="not member of any chord"):
        t.grow_chord.delay(1).get(timeout=15)


# -- send_event() ----------------------------------------------------------------------------
def test_send_event_records_a_custom_event_without_dash_e(
    t: Any, start_worker: Any, proj_app: Any
) -> None:
    from celeriac.events import read_events

    start_worker(*WORKER)  # no -E: custom events are sent anyway, as in Celery
    result = t.report_progress.delay(10)
    assert result.get(timeout=15) == 10
    events = [e for e in read_events(proj_app, 0) if e["uuid"] == result.id]
    assert [e["type"] for e in events if e["type"] != "task-sent"] == ["task-progress"]
    assert events[0]["fields"] == {"current": 5, "total": 10}
    assert events[0]["hostname"].startswith("celery@")
