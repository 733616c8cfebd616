"""The benchmark's tasks for procrastinate (``procrastinate --app=... worker``)."""

from __future__ import annotations

import os
import time

from procrastinate import App, PsycopgConnector

from bench.common import stamp

app = App(
    connector=PsycopgConnector(
        conninfo=os.environ.get(
            "BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/celeriac_bench_procrastinate"
        )
    )
)


@app.task(name="bench.noop")
def noop() -> None:
    """The no-op job of enqueue and drain."""


@app.task(name="bench.started")
def started(sent: float, path: str) -> None:
    """Latency probe: record when it was sent and when it started."""
    stamp(path, sent, time.time())
