"""The benchmark's tasks for Celery (Redis, RabbitMQ or SQLAlchemy broker, from env)."""

from __future__ import annotations

import os
import time

from celery import Celery

from bench.common import stamp


def noop() -> None:
    """The no-op job of enqueue and drain."""


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


def make_app(broker: str, backend: str) -> Celery:
    """A Celery app with the benchmark's tasks; default settings except where noted."""
    app = Celery("bench", broker=broker, backend=backend, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.result_expires = 3600
    for fun in (noop, started, echo, sleepy, combine):
        app.task(name=f"bench.{fun.__name__}")(fun)
    return app


app = make_app(
    os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/10"),
    os.environ.get("BENCH_BACKEND", "redis://127.0.0.1:6379/11"),
)
