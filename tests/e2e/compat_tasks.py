"""Tasks for the Celery-compatibility tests (retry without throw, replace, add_to_chord);
workers load them with ``-I canvas_tasks -I compat_tasks``."""

from __future__ import annotations

from typing import Any

from canvas_tasks import identity, mul  # type: ignore[import-not-found]
from proj import add, app  # type: ignore[import-not-found]

from celeriac import chain, group


@app.task(bind=True, max_retries=1)
def retry_quietly(self: Any, value: int) -> str:
    """retry(throw=False) on the first run, then go on: this run still succeeds."""
    if self.request.retries == 0:
        self.retry(args=(value + 1,), countdown=0.1, throw=False)
        return f"first {value}"
    return f"retry {self.request.retries} {value}"


@app.task(bind=True)
def replace_with_chain(self: Any, x: int) -> Any:
    return self.replace(chain(add.s(x, 1), mul.s(10)))


@app.task(bind=True)
def replace_with_group(self: Any, x: int) -> Any:
    return self.replace(group(add.s(x, 1), add.s(x, 2)))


@app.task(bind=True)
def replace_with_task(self: Any, x: int) -> Any:
    return self.replace(mul.s(x, 3))


@app.task(bind=True)
def grow_chord(self: Any, x: int) -> int:
    """A chord header task that adds one more header task (its result comes last)."""
    self.add_to_chord(identity.si(x * 100))
    return x


@app.task(bind=True)
def report_progress(self: Any, total: int) -> int:
    """Sends a custom event for monitors (Celery's Task.send_event)."""
    self.send_event("task-progress", current=total // 2, total=total)
    return total
