"""celeriac: Celery's API, CLI and semantics with PostgreSQL as the only server.

Port a Celery project by changing ``celery`` to ``celeriac`` in its imports.
"""

from __future__ import annotations

from celeriac import exceptions, states
from celeriac._state import CurrentTaskProxy as _CurrentTaskProxy
from celeriac._state import get_current_app as _get_current_app
from celeriac.app import Celery, shared_task
from celeriac.canvas import Signature, maybe_signature, signature, subtask
from celeriac.result import AsyncResult, GroupResult
from celeriac.task import Task
from celeriac.utils import uuid

__version__ = "0.1.0"

current_task = _CurrentTaskProxy()


def __getattr__(name: str) -> object:
    if name == "current_app":
        return _get_current_app()
    if name in {"chain", "group"}:
        from celeriac import canvas_workflows

        return getattr(canvas_workflows, name)
    if name == "chord":
        from celeriac.canvas_chord import chord

        return chord
    if name in {"chunks", "xmap", "xstarmap"}:
        from celeriac import canvas_maps

        return getattr(canvas_maps, name)
    raise AttributeError(f"module 'celeriac' has no attribute {name!r}")


__all__ = [
    "AsyncResult",
    "Celery",
    "GroupResult",
    "Signature",
    "Task",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "exceptions",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "uuid",
    "xmap",
    "xstarmap",
]
