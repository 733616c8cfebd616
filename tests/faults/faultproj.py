"""Tasks the fault tests' worker subprocesses run (loaded with ``-A faultproj``).

Every run appends ``<task id> <node>`` to ``FAULTS_RUNLOG`` (one short ``O_APPEND`` write,
atomic), so a test can count how often each task really ran, whatever the database says.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celeriac import Celery

app = Celery("faultproj", broker=os.environ.get("FAULTS_DSN"))
app.conf.update(
    worker_heartbeat_interval=float(os.environ.get("FAULTS_HEARTBEAT", "0.5")),
    worker_lost_timeout=float(os.environ.get("FAULTS_LOST_TIMEOUT", "30")),
    worker_poll_interval=0.5,
    accept_content=["json"],
)
if os.environ.get("FAULTS_NOTIFY_RESULTS") == "0":
    app.conf.celeriac_notify_results = False
if os.environ.get("FAULTS_DEAD_AFTER"):
    app.conf.celeriac_dead_connection_timeout = float(os.environ["FAULTS_DEAD_AFTER"])


def _record(task: Any) -> None:
    path = os.environ.get("FAULTS_RUNLOG")
    if path:
        line = f"{task.request.id} {task.request.hostname}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@app.task(bind=True, acks_late=True)
def work(self: Any, n: int, seconds: float = 0.0) -> int:
    """Record the run, sleep a little, return ``n``."""
    _record(self)
    time.sleep(seconds)
    return n


@app.task(bind=True)
def early(self: Any, n: int, seconds: float = 0.0) -> int:
    """The same, acknowledged early (at most once)."""
    _record(self)
    time.sleep(seconds)
    return n


@app.task(bind=True, acks_late=True)
def slow_on(self: Any, node_prefix: str, seconds: float) -> str:
    """Sleep only when run by a node whose name starts with ``node_prefix``; return the node."""
    _record(self)
    hostname = str(self.request.hostname)
    if hostname.startswith(node_prefix):
        time.sleep(seconds)
    return hostname


@app.task(bind=True)
def whoami(self: Any) -> dict[str, Any]:
    """What the task sees of its request (for the metadata leak test)."""
    _record(self)
    return {"hostname": self.request.hostname, "id": self.request.id}


@app.task(bind=True)
def early_slow_on(self: Any, node_prefix: str, seconds: float) -> str:
    """``slow_on`` acknowledged early: a rescue ends it WorkerLostError, not a second run."""
    _record(self)
    hostname = str(self.request.hostname)
    if hostname.startswith(node_prefix):
        time.sleep(seconds)
    return hostname


def _hold(task: Any, node_prefix: str, gate: str) -> str:
    """On a node named ``node_prefix...`` run until the file ``gate`` exists (at most a
    minute): the test decides when such a run ends. Elsewhere return at once."""
    _record(task)
    hostname = str(task.request.hostname)
    deadline = time.monotonic() + 60
    while hostname.startswith(node_prefix) and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)
    return hostname


@app.task(bind=True, acks_late=True)
def held_on(self: Any, node_prefix: str, gate: str) -> str:
    """Runs on ``node_prefix...`` nodes until ``gate`` exists; returns the node."""
    return _hold(self, node_prefix, gate)


@app.task(bind=True)
def early_held_on(self: Any, node_prefix: str, gate: str) -> str:
    """``held_on`` acknowledged early."""
    return _hold(self, node_prefix, gate)


# a task whose name looks like SQL: names are data, never spliced into statements
SQL_LOOKING_NAME = "x'); DROP TABLE jobs; --\"ü"


@app.task(bind=True, name=SQL_LOOKING_NAME)
def sql_looking(self: Any, text: str) -> str:
    _record(self)
    return text


@app.task(bind=True, acks_late=True)
def collect(self: Any, results: list[int]) -> int:
    """A chord body: record the run, return the sum of the header's results."""
    _record(self)
    return sum(results)
