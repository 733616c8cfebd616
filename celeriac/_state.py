"""Process-wide state: the current app, and the task being executed in this thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery

_current_app: Celery | None = None
_default_app: Celery | None = None
_all_apps: list[Any] = []
_local = threading.local()


def set_current_app(app: Celery) -> None:
    global _current_app
    _current_app = app


def get_current_app() -> Celery:
    """The app set as current, or a default app (as Celery's ``current_app``)."""
    global _default_app
    if _current_app is not None:
        return _current_app
    if _default_app is None:
        from celeriac.app import Celery

        _default_app = Celery("default", set_as_current=False)
    return _default_app


def register_app(app: Any) -> None:
    _all_apps.append(app)


def all_apps() -> list[Any]:
    return list(_all_apps)


def current_task() -> Any:
    """The task running in this thread, if any."""
    stack = getattr(_local, "tasks", None)
    return stack[-1] if stack else None


def push_task(task: Any) -> None:
    if not hasattr(_local, "tasks"):
        _local.tasks = []
    _local.tasks.append(task)


def pop_task() -> None:
    _local.tasks.pop()


def in_worker_task() -> bool:
    """True while a worker (not eager mode, not a direct call) executes a task here."""
    task = current_task()
    return task is not None and not task.request.is_eager and not task.request.called_directly


class CurrentTaskProxy:
    """``celeriac.current_task``: the task running in this thread, looked up on each use.

    ``from celeriac import current_task`` at the top of a module works as in Celery:
    the name stays bound to this proxy, which is falsy when no task is running.
    """

    def __getattr__(self, name: str) -> Any:
        task = current_task()
        if task is None:
            raise AttributeError(f"no task is running in this thread (current_task.{name})")
        return getattr(task, name)

    def __bool__(self) -> bool:
        return current_task() is not None

    def __repr__(self) -> str:
        return f"<current_task: {current_task()!r}>"
