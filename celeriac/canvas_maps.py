"""``task.map(it)``, ``task.starmap(it)`` and ``task.chunks(it, n)`` as in Celery.

``xmap`` / ``xstarmap`` are ONE message (``celery.map`` / ``celery.starmap``, builtin
tasks of every app) that calls the task over every item in a single worker; ``chunks``
is a group of ``celery.starmap`` tasks of ``n`` items each (a list of lists as result).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature
from celeriac.canvas_plan import Planner
from celeriac.canvas_workflows import _sig, _Workflow, group

if TYPE_CHECKING:
    from celeriac.app import Celery


class _basemap(Signature):
    """One message that runs a task over every item in a single worker."""

    task_name = ""
    kind = ""

    def __init__(self, task: Any, it: Iterable[Any], app: Celery | None = None, **options: Any):
        data = {"task": dict(_sig(task, app)), "it": list(it)}
        super().__init__(self.task_name, (), data, options, app=app, immutable=True)
        self["subtask_type"] = self.kind

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celery | None = None) -> _basemap:
        fields = data["kwargs"]
        return cls(fields["task"], fields["it"], app=app, **data.get("options", {}))


class xmap(_basemap):
    """``task.map(it)``: ``[task(item) for item in it]`` in one worker."""

    task_name, kind = "celery.map", "xmap"


class xstarmap(_basemap):
    """``task.starmap(it)``: ``[task(*item) for item in it]`` in one worker."""

    task_name, kind = "celery.starmap", "xstarmap"


class chunks(_Workflow):
    """``task.chunks(it, n)``: a group of ``celery.starmap`` tasks of ``n`` items each."""

    def __init__(
        self, task: Any, it: Iterable[Any], n: int, app: Celery | None = None, **options: Any
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"chunks: n must be a positive integer, got {n!r}")
        data = {"task": dict(_sig(task, app)), "it": list(it), "n": int(n)}
        super().__init__("celery.chunks", (), data, options, app=app, immutable=True)
        self["subtask_type"] = "chunks"

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celery | None = None) -> chunks:
        fields = data["kwargs"]
        return cls(fields["task"], fields["it"], fields["n"], app=app, **data.get("options", {}))

    def group(self) -> group:
        """The group of starmap tasks this stands for."""
        task, items, n = self.kwargs["task"], list(self.kwargs["it"]), self.kwargs["n"]
        parts = [xstarmap(task, items[i : i + n], app=self._app) for i in range(0, len(items), n)]
        return group(parts, app=self._app, **self.options)

    def parts(self) -> list[Signature]:
        return [self.group()]

    def freeze(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("chunks cannot be frozen: use chunks(...).group()")

    def build(
        self, planner: Planner, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        return self.group().build(planner, [], {}, options)

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        return self.group().apply()

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(**options)


__all__ = ["chunks", "xmap", "xstarmap"]
