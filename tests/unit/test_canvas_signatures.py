"""Workflow signatures as plain data: composition with ``|``, JSON round trips, freezing."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, chain, chord, chunks, group, serialization, signature, xmap
from celeriac.canvas_plan import Planner


@pytest.fixture
def app() -> Any:
    application = Celery("canvas_unit", broker="postgresql://unused/", set_as_current=False)

    @application.task
    def add(x: int, y: int) -> int:
        return x + y

    @application.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    return application


def roundtrip(sig: Any, app: Any) -> Any:
    data = serialization.loads(serialization.dumps(sig), serialization.JSON, {serialization.JSON})
    return signature(data, app=app)


def test_pipe_builds_celery_types(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    assert type(add.s(1, 1) | add.s(2)) is chain
    assert type(group(add.s(1, 1), add.s(2, 2)) | tsum.s()) is chord
    assert type(add.s(1, 1) | group(add.s(1), add.s(2))) is chain
    three = add.s(1, 1) | add.s(2) | add.s(3)
    assert [t.args for t in three.tasks] == [[1, 1], [2], [3]]  # flat, not nested
    body_chain = chord([add.s(1, 1)], tsum.s()) | add.s(10)
    assert type(body_chain) is chord and type(body_chain.body) is chain
    assert type(chord([add.s(1, 1)], tsum.s()) | group(add.s(1))) is chain


def test_workflows_survive_json_round_trip(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    workflow = chain(add.s(1, 1), chord([add.s(1), add.si(5, 5)], tsum.s()), add.s(3))
    back = roundtrip(workflow, app)
    assert type(back) is chain
    assert dict(back) == dict(workflow)
    inner = back.tasks[1]
    assert type(inner) is chord and type(inner.header) is group
    assert inner.header.tasks[1].immutable
    assert type(roundtrip(xmap(add.s(), [1, 2], app=app), app)) is xmap
    assert type(roundtrip(chunks(add.s(), [(1, 2)], 1, app=app), app)) is chunks


def test_chain_steps_upgrade_group_then_task_to_chord(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    steps = chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s(), add.s(1)).steps()
    assert [type(s).__name__ for s in steps] == ["Signature", "_chord", "Signature"]


def test_freeze_links_parents_through_a_chain_and_a_chord(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    workflow = chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(3))
    last = workflow.freeze()
    body = last.parent
    header = body.parent
    first = header.parent
    assert last.id == workflow.tasks[2].id
    assert body.id == workflow.tasks[1].body.id
    assert [r.id for r in header.results] == [t.id for t in workflow.tasks[1].header.tasks]
    assert first.id == workflow.tasks[0].id and first.parent is None
    assert workflow.freeze().id == last.id  # freezing again keeps the ids


def test_plan_of_a_chain_carries_the_reversed_rest(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    workflow = chain(add.s(1, 1), add.s(2), add.s(3))
    planner = Planner(app)
    result = workflow.clone().build(planner, [], {}, {})
    (message,) = planner.plan.messages
    body = serialization.loads(message.body, message.content_type, {message.content_type})
    args, _, embed = body
    assert args == [1, 1]
    assert [step["args"] for step in embed["chain"]] == [[3], [2]]  # next step is last
    assert embed["chain"][0]["options"]["task_id"] == result.id


def test_plan_of_a_chord_creates_its_counter(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    planner = Planner(app)
    result = chord([add.s(i, i) for i in range(3)], tsum.s()).build(planner, [], {}, {})
    (join,) = planner.plan.chords
    assert join.group_id == result.parent.id
    assert list(join.task_ids) == [m.task_id for m in planner.plan.messages]
    assert [m.headers["group_index"] for m in planner.plan.messages] == [0, 1, 2]
    assert {m.headers["group"] for m in planner.plan.messages} == {join.group_id}


def test_group_link_goes_to_first_task_immutable(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    workflow = group(add.s(1, 1), add.s(2, 2))
    workflow.link(add.s(5))
    assert workflow.tasks[0].options["link"][0]["immutable"] is True
    assert "link" not in workflow.tasks[1].options
    workflow.link_error(add.s(9))
    assert all(len(t.options["link_error"]) == 1 for t in workflow.tasks)


def test_chunks_group_and_bad_n(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    parts = add.chunks([(i, i) for i in range(5)], 2).group().tasks
    assert [p.kwargs["it"] for p in parts] == [[(0, 0), (1, 1)], [(2, 2), (3, 3)], [(4, 4)]]
    assert {p.task for p in parts} == {"celery.starmap"}
    with pytest.raises(ValueError, match="positive"):
        add.chunks([(1, 1)], 0)


def test_builtins_registered_on_every_app(app: Any) -> None:
    assert {"celery.map", "celery.starmap", "celery.chunks"} <= set(app.tasks)
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    assert app.tasks["celery.starmap"](add.s(), [(1, 2), (3, 4)]) == [3, 7]


def test_eager_workflows(app: Any) -> None:
    app.conf["task_always_eager"] = True
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    assert (add.s(1, 1) | add.s(2)).apply_async().get() == 4
    assert group(add.s(1, 1), add.s(2, 2)).apply_async().get() == [2, 4]
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get() == 6


def test_chord_link_error_goes_to_the_body_and_optionally_the_header(app: Any) -> None:
    add = next(t for name, t in app.tasks.items() if name.endswith(".add"))
    tsum = next(t for name, t in app.tasks.items() if name.endswith(".tsum"))
    workflow = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    workflow.link_error(add.s(9))
    assert len(workflow.body.options["link_error"]) == 1
    assert all("link_error" not in t.options for t in workflow.header.tasks)
    app.conf["task_allow_error_cb_on_chord_header"] = True
    workflow = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    workflow.link_error(add.s(9))
    assert all(t.options["link_error"][0]["immutable"] for t in workflow.header.tasks)
