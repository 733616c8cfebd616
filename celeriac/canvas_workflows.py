"""Workflows built from signatures: chain, group, chord, chunks, xmap, xstarmap.

Each is a Signature (a dict, so it survives JSON and the database) with Celery's
``subtask_type``. ``freeze()`` assigns every task id in place and returns the result
tree (``AsyncResult.parent`` links back through a chain; a chord's result is its body's,
whose parent is the header's GroupResult). ``build()`` adds the messages to a Planner;
``apply_async()`` freezes, builds and publishes the whole plan in one statement.

Celery's rules: a chain's call-time args go to its first task and its options to the
first message; ``link`` goes to the last task, ``link_error`` to every task; a group
followed by anything in a chain becomes a chord; nested chains are spliced, nested
groups flattened. A group's options apply to every member; ``group.link`` links only the
first task (immutable). A chord's options apply to its header tasks and its body.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from celeriac import _state
from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Planner
from celeriac.result import GroupResult

if TYPE_CHECKING:
    from celeriac.app import Celery

_LAST = ("task_id", "group_id", "group_index", "chord")  # options of a chain's last task


def _sig(value: Any, app: Celery | None) -> Signature:
    sig = maybe_signature(value, app=app)
    if sig is None:
        raise TypeError(f"not a signature: {value!r}")
    return sig


def _listify(tasks: tuple[Any, ...]) -> list[Any]:
    if len(tasks) == 1 and not isinstance(tasks[0], dict) and isinstance(tasks[0], Iterable):
        return list(tasks[0])
    return list(tasks)


def _as_list(value: Any) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _top(result: Any) -> Any:
    """The first result of a result tree (follow ``.parent`` up)."""
    seen = set()
    while result.parent is not None and id(result) not in seen:
        seen.add(id(result))
        result = result.parent
    return result


def _chord() -> Any:
    from celeriac.canvas_chord import chord

    return chord


class _Workflow(Signature):
    """What chain, group and chord share: cloning keeps the type; calling plans."""

    def parts(self) -> list[Signature]:
        return []

    def clone(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **opts: Any
    ) -> Signature:
        sig = from_dict(copy.deepcopy(dict(self)), app=self._app)
        if args and not sig.immutable:
            sig["args"] = [*args, *sig["args"]]
        if kwargs and not sig.immutable:
            sig["kwargs"] = {**sig["kwargs"], **kwargs}
        sig.options.update(copy.deepcopy(opts))
        return sig

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return from_dict(copy.deepcopy(dict(self), memo), app=self._app)

    def build(
        self, planner: Planner, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        raise NotImplementedError

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Freeze, plan and publish the whole workflow in one statement."""
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        connection = options.pop("connection", None)
        for unused in ("producer", "publisher", "add_to_parent", "router", "result_cls"):
            options.pop(unused, None)
        sig = self.clone()
        assert isinstance(sig, _Workflow)
        planner = Planner(app)
        result = sig.build(planner, list(args or ()), dict(kwargs or {}), options)
        app.publish(planner.plan.messages, connection=connection, chords=planner.plan.chords)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)


class _TaskList(_Workflow):
    """A workflow made of a list of signatures (``kwargs["tasks"]``): chain and group."""

    kind = ""

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        members = [_sig(t, app) for t in _listify(tasks)]
        super().__init__(f"celery.{self.kind}", (), {"tasks": members}, options, app=app)
        self["subtask_type"] = self.kind

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celery | None = None) -> Self:
        sig = cls(*data["kwargs"].get("tasks", ()), app=app, **data.get("options", {}))
        sig["args"], sig["immutable"] = list(data.get("args", ())), data.get("immutable", False)
        return sig

    @property
    def tasks(self) -> list[Signature]:
        return self["kwargs"]["tasks"]  # type: ignore[no-any-return]

    @property
    def app(self) -> Celery:
        if self._app is None and self.tasks:
            return self.tasks[0].app
        return self._app or _state.get_current_app()


class chain(_TaskList):
    """Tasks run one after the other, each result prepended to the next task's args."""

    kind = "chain"

    def parts(self) -> list[Signature]:
        return self.steps()

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps, with the chain's link on the last and link_error on all."""
        tasks = [t.clone() for t in self.steps()]
        for callback in _as_list(self.options.get("link")):
            tasks[-1].link(callback)
        for errback in _as_list(self.options.get("link_error")):
            for task in tasks:
                task.link_error(errback)
        return tasks

    def steps(self) -> list[Signature]:
        """The steps, normalized in place: nested chains spliced, ``group, x`` → chord."""
        flat: list[Signature] = []
        for task in self.tasks:
            flat.extend(task.unchain_tasks() if isinstance(task, chain) else [task])
        steps: list[Signature] = []
        for task in flat:
            if steps and isinstance(steps[-1], group):
                task = _chord()(steps.pop(), task, app=self._app)
            steps.append(task)
        self["kwargs"]["tasks"] = steps
        return steps

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
        **kwargs: Any,
    ) -> Any:
        steps = self.steps()
        if not steps:
            return None
        results = [step.freeze(root_id=root_id) for step in steps[:-1]]
        results.append(
            steps[-1].freeze(
                _id, group_id=group_id, chord=chord, root_id=root_id, group_index=group_index
            )
        )
        for previous, current in itertools.pairwise(results):
            top = _top(current)
            if top is not previous and top.parent is None:
                top.parent = previous
        return results[-1]

    def build(
        self, planner: Planner, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        options = {**self.options, **options}
        steps = self.steps()
        if not steps:
            return None
        for callback in _as_list(options.pop("link", None)):
            steps[-1].link(callback)
        for errback in _as_list(options.pop("link_error", None)):
            for step in steps:
                step.link_error(errback)
        last = {key: options.pop(key) for key in _LAST if key in options}
        result = self.freeze(
            last.get("task_id"),
            group_id=last.get("group_id"),
            chord=last.get("chord"),
            root_id=options.get("root_id"),
            group_index=last.get("group_index"),
        )
        if "chord" in last:
            steps[-1].options["chord"] = last["chord"]
        rest = [*(options.pop("chain", None) or []), *reversed(steps[1:])]
        if rest:
            options["chain"] = rest
        if not self.immutable:
            args = [*args, *self.args]
        planner.add(steps[0], args, kwargs, options)
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run every step here, in order (``task_always_eager``)."""
        last: Any = None
        call_args = list(args or ())
        for step in self.steps():
            res = step.clone().apply(call_args if last is None else [last.get()], kwargs)
            res.parent, last, kwargs = last, res, None
        return last

    def __or__(self, other: Any) -> Any:
        if isinstance(other, group):
            return chain(*self.unchain_tasks(), other, app=self._app)
        if isinstance(other, chain):
            return chain(*self.unchain_tasks(), *other.unchain_tasks(), app=self._app)
        if isinstance(other, Signature):
            tasks = self.unchain_tasks()
            chord = _chord()
            if tasks and isinstance(tasks[-1], chord) and not isinstance(other, chord):
                tasks[-1] = tasks[-1] | other
                return chain(*tasks, app=self._app)
            return chain(*tasks, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) or "chain(<empty>)"


class group(_TaskList):
    """Tasks run in parallel; the result is a GroupResult in group order."""

    kind = "group"

    def __len__(self) -> int:
        return len(self.tasks)

    def parts(self) -> list[Signature]:
        return self.members()

    def members(self) -> list[Signature]:
        """The tasks, nested groups flattened in place (all run in parallel)."""
        flat: list[Signature] = []
        for task in self.tasks:
            flat.extend(task.members() if isinstance(task, group) else [task])
        self["kwargs"]["tasks"] = flat
        return flat

    def link(self, callback: Signature) -> Signature:
        """As Celery: linked to the first task only, made immutable."""
        return self.members()[0].link(callback.clone().set(immutable=True))

    def link_error(self, errback: Signature) -> Signature:
        """As Celery: added to every task (it may fire once per failing task)."""
        for member in self.members():
            member.link_error(errback.clone())
        return errback

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
        **kwargs: Any,
    ) -> GroupResult:
        gid = self.options.setdefault("task_id", _id or group_id or str(uuid.uuid4()))
        results = [
            member.freeze(group_id=gid, chord=chord, root_id=root_id, group_index=index)
            for index, member in enumerate(self.members())
        ]
        return GroupResult(gid, results, app=self.app)

    def build(
        self, planner: Planner, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        options = {**self.options, **options}
        for errback in _as_list(options.pop("link_error", None)):
            self.link_error(_sig(errback, self._app))
        for callback in _as_list(options.pop("link", None)):
            self.link(_sig(callback, self._app))
        rest = list(options.pop("chain", None) or [])
        if rest:  # a group followed by more steps joins them: chord(group, next step)
            step = _sig(rest.pop(), self._app)
            upgraded = _chord()(self, step, app=self._app)
            options.pop("task_id", None)  # the group's id stays the header's
            return upgraded.build(planner, args, kwargs, {**options, "chain": rest})
        for unused in ("group_id", "group_index"):
            options.pop(unused, None)
        chord = options.pop("chord", None)
        result = self.freeze(options.pop("task_id", None), root_id=options.get("root_id"))
        member_options = {**options, **({"chord": chord} if chord is not None else {})}
        if not self.immutable:
            args = [*args, *self.args]
        for index, member in enumerate(self.members()):
            planner.add(
                member,
                args,
                kwargs,
                {**member_options, "group_id": result.id, "group_index": index},
            )
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> GroupResult:
        """Run every task here (``task_always_eager``)."""
        gid = self.options.get("task_id") or str(uuid.uuid4())
        results = [m.clone().apply(args, kwargs) for m in self.members()]
        return GroupResult(gid, results, app=self.app)

    def __call__(self, *partial_args: Any, **options: Any) -> Any:
        return self.apply_async(partial_args, **options)

    def __or__(self, other: Any) -> Any:
        return _chord()(self, body=other, app=self._app)

    def __repr__(self) -> str:
        return f"group({self.tasks!r})"


_TYPES: dict[str, Any] = {"chain": chain, "group": group}


def from_dict(data: dict[str, Any], app: Any = None) -> Signature:
    """Rebuild a signature (or workflow) from its dict form, by ``subtask_type``."""
    if "chord" not in _TYPES:
        from celeriac import canvas_chord, canvas_maps

        _TYPES.update(
            chord=canvas_chord.chord,
            chunks=canvas_maps.chunks,
            xmap=canvas_maps.xmap,
            xstarmap=canvas_maps.xstarmap,
        )
    kind = _TYPES.get(data.get("subtask_type") or "")
    if kind is None:
        return Signature(dict(data), app=app)
    return kind.from_dict(data, app=app)  # type: ignore[no-any-return]


def join_with_or(left: Signature, right: Any) -> Any:
    """``left | right`` for a task signature: a chain."""
    if isinstance(right, chain):
        return chain(left, *right.unchain_tasks(), app=left._app)
    if isinstance(right, Signature):
        return chain(left, right, app=left._app)
    return NotImplemented


__all__ = ["chain", "from_dict", "group", "join_with_or"]
