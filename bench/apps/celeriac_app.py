"""The benchmark's tasks for celeriac (the worker imports this module with -A)."""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import stamp
from celeriac import Celery


def noop() -> None:
    """The no-op job of enqueue, drain and scale."""


def started(sent: float, path: str) -> None:
    """Latency probe: record when it was sent and when it started."""
    stamp(path, sent, time.time())


def echo(value: int) -> int:
    """Round-trip probe for ``delay().get()``."""
    return value


def sleepy(seconds: float) -> float:
    """Fan-out part: simulated work."""
    time.sleep(seconds)
    return seconds


def combine(parts: list[float], request: int, path: str) -> int:
    """Fan-out callback: record when the request finished."""
    stamp(path, request, time.time())
    return request


def make_app(dsn: str, schema: str, **conf: Any) -> Celery:
    """A celeriac app with the benchmark's tasks registered under fixed names."""
    app = Celery("bench", broker=dsn, celeriac_schema=schema, **conf)
    for fun in (noop, started, echo, sleepy, combine):
        app.task(name=f"bench.{fun.__name__}")(fun)
    return app


app = make_app(
    os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/celeriac_bench_celeriac"),
    os.environ.get("BENCH_SCHEMA", "bench"),
)
