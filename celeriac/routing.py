"""Which queue a task goes to: call options, then the task's own, then task_routes.

``task_routes`` takes Celery's forms: a dict of task name (glob, or compiled regex) to
options, a list of such dicts, or callables ``(name, args, kwargs, options, task=None,
**kw)`` — given directly or as a dotted path; an object with ``route_for_task`` works too.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any


def route(
    routes: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None
) -> dict[str, Any]:
    """Options a route gives this task (may be empty)."""
    for router in _as_list(routes):
        found = _lookup(router, name, args, kwargs, options, task)
        if found:
            return {"queue": found} if isinstance(found, str) else dict(found)
    return {}


def is_static(routes: Any) -> bool:
    """True when routes depend on the task name only (dicts): every call of a task goes
    to the same queue, whatever its arguments."""
    for router in _as_list(routes):
        if isinstance(router, str):
            from celeriac.config import load_object

            router = load_object(router)
        if not isinstance(router, dict):
            return False
    return True


def _as_list(routes: Any) -> list[Any]:
    if not routes:
        return []
    if isinstance(routes, dict | str) or callable(routes):
        return [routes]
    return list(routes)


def _lookup(
    router: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any
) -> Any:
    if isinstance(router, str):
        from celeriac.config import load_object

        router = load_object(router)
    if hasattr(router, "route_for_task"):
        router = router.route_for_task
    if isinstance(router, dict):
        if name in router:
            return router[name]
        for pattern, value in router.items():
            if isinstance(pattern, re.Pattern) and pattern.match(name):
                return value
            if isinstance(pattern, str) and fnmatch.fnmatchcase(name, pattern):
                return value
        return None
    if callable(router):
        fun: Callable[..., Any] = router
        try:
            return fun(name, args, kwargs, options, task=task)
        except TypeError:
            return fun(name, args, kwargs, options)
    return None
