"""Tasks every app has, as in Celery: ``celery.map``, ``celery.starmap``, ``celery.chunks``,
``celery.accumulate`` (the body ``replace()`` gives a group: its results as a list).

``task.map(it)`` / ``task.starmap(it)`` send ONE message that runs the task over every
item in a single worker (in-process calls, no messages per item); the result is a list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.canvas import signature

if TYPE_CHECKING:
    from celeriac.app import Celery


def register_builtins(app: Celery) -> None:
    """Register the builtin tasks on ``app``."""

    def xmap(task: Any, it: list[Any]) -> list[Any]:
        run = signature(task, app=app).type
        return [run(item) for item in it]

    def xstarmap(task: Any, it: list[Any]) -> list[Any]:
        run = signature(task, app=app).type
        return [run(*item) for item in it]

    def chunks(task: Any, it: list[Any], n: int) -> Any:
        from celeriac.canvas_maps import chunks as make_chunks

        return make_chunks(task, it, n, app=app).apply_async().id

    def accumulate(*args: Any, **kwargs: Any) -> Any:
        index = kwargs.get("index")
        return args[index] if index is not None else args

    app._task_from_fun(accumulate, name="celery.accumulate")
    app._task_from_fun(xmap, name="celery.map")
    app._task_from_fun(xstarmap, name="celery.starmap")
    app._task_from_fun(chunks, name="celery.chunks")


__all__ = ["register_builtins"]
