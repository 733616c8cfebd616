"""Tasks used by the end-to-end tests; the worker subprocess loads this with -A."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celeriac import Celery

app = Celery("proj", broker=os.environ.get("CELERIAC_TEST_DSN"))
# the task-sent event test turns Celery's setting on in its workers
app.conf.task_send_sent_event = bool(os.environ.get("PROJ_SENT_EVENTS"))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task
def sleep_then(seconds: float, value: object = None, marker: str | None = None) -> object:
    """Sleep; if ``marker`` is a path, append a line when starting (to count runs)."""
    if marker:
        with open(marker, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return value


@app.task(acks_late=True, reject_on_worker_lost=True)
def late_sleep(seconds: float, marker: str | None = None, rerun: float | None = None) -> str:
    """Sleep ``seconds``; with ``rerun``, a run that finds an earlier run in ``marker``
    sleeps ``rerun`` instead (a first run that must be cut off, a rerun that must end)."""
    if marker:
        with open(marker, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        with open(marker) as handle:
            if rerun is not None and len(handle.read().splitlines()) > 1:
                seconds = rerun
    time.sleep(seconds)
    return "done"


@app.task(time_limit=1)
def spin() -> None:
    while True:
        pass


@app.task(bind=True, max_retries=2, default_retry_delay=0.05)
def flaky(self: object) -> str:
    request = self.request  # type: ignore[attr-defined]
    if request.retries < 2:
        raise self.retry(exc=RuntimeError("again"))  # type: ignore[attr-defined]
    return f"ok after {request.retries}"


def touch(path: str) -> None:
    Path(path).touch()
