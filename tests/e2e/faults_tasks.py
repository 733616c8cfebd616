"""Tasks for the worker fault tests; workers load them with ``-I faults_tasks``.

Tasks that must be "running" when a test acts append their pid to a ``marker`` file as
they start, and those that must stay running wait for a ``gate`` file: the test decides
when they finish, so nothing depends on sleeping for the right amount of time.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from proj import app  # type: ignore[import-not-found]

from celeriac import Task
from celeriac.exceptions import SoftTimeLimitExceeded


def mark(marker: str | None, text: str | None = None) -> None:
    if marker:
        with open(marker, "a") as handle:
            handle.write(f"{text if text is not None else os.getpid()}\n")


def wait_gate(gate: str | None, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (gate and os.path.exists(gate)):
        time.sleep(0.02)


@app.task
def block(marker: str | None = None, gate: str | None = None, seconds: float = 60) -> int:
    """Early-acknowledged: start, then wait for the gate; returns the pid."""
    mark(marker)
    wait_gate(gate, seconds)
    return os.getpid()


@app.task(acks_late=True)
def late_block(marker: str | None = None, gate: str | None = None, seconds: float = 60) -> int:
    """acks_late without reject_on_worker_lost."""
    mark(marker)
    wait_gate(gate, seconds)
    return os.getpid()


@app.task(acks_late=True, reject_on_worker_lost=True)
def late_reject_block(
    marker: str | None = None, gate: str | None = None, seconds: float = 60
) -> int:
    """acks_late and reject_on_worker_lost."""
    mark(marker)
    wait_gate(gate, seconds)
    return os.getpid()


@app.task
def record(path: str, tag: str) -> str:
    """Append ``tag`` to ``path`` (to see the order tasks ran in)."""
    mark(path, tag)
    return tag


@app.task
def whoami() -> int:
    return os.getpid()


@app.task
def grow(megabytes: int) -> int:
    """Touch ``megabytes`` MiB of memory, keep it referenced until return."""
    data = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(data), 4096):
        data[offset] = 1
    return os.getpid()


@app.task(soft_time_limit=0.5)
def soft_catch(seconds: float = 10) -> str:
    """Catches its soft limit and returns normally (a Python loop, so every pool can raise)."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.01)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "not interrupted"


class MarksFailure(Task):
    """Writes ``<marker>.failure`` when on_failure runs."""

    def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        marker = kwargs.get("marker") or (args[0] if args else None)
        if marker:
            mark(f"{marker}.failure", type(exc).__name__)


@app.task(base=MarksFailure, time_limit=1)
def hard_spin(marker: str | None = None) -> None:
    """A pure-Python infinite loop with a 1 s hard limit."""
    mark(marker)
    while True:
        pass


@app.task(base=MarksFailure, time_limit=1)
def hard_sleep(marker: str | None = None) -> None:
    """Blocked in C (time.sleep) past its 1 s hard limit."""
    mark(marker)
    time.sleep(20)


@app.task
def errback_marker(request: Any, exc: BaseException, traceback: str, path: str) -> None:
    """A new-style errback: called as (request, exc, traceback) in the failing worker."""
    mark(path, type(exc).__name__)


@app.task(rate_limit="4/s")
def rated(path: str) -> None:
    mark(path, f"{time.time():.4f}")


@app.task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


@app.task(track_started=True)
def tracked(marker: str | None = None, gate: str | None = None) -> str:
    mark(marker)
    wait_gate(gate, 30)
    return "tracked"


@app.task(bind=True)
def progress(self: Task, gate: str) -> str:
    self.update_state(state="PROGRESS", meta={"current": 1, "total": 2})
    wait_gate(gate, 30)
    return "complete"


@app.task
def unserializable() -> object:
    return object()


@app.task
def nul_failure() -> None:
    raise ValueError("a NUL \x00 in the message")


def touch(path: str) -> None:
    Path(path).touch()


@app.task
def max_rss() -> tuple[int, int]:
    """This process's pid and peak resident memory in KiB."""
    import resource

    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
