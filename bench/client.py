"""Client-side numbers: publish rate, get() wake-up latency, embedded server start-up.

    python -m bench.client --publishes 2000 --bulk 50000 --group 10000 --wakeups 50

* publish: ``delay()`` one task at a time (one INSERT + NOTIFY per call), tasks/s, with
  durable commits and with ``delivery_mode="transient"`` (asynchronous commit); and the
  client's own CPU time per task (``time.process_time``: what Python costs, whatever the
  server's load).
* bulk: ``Task.delay_many`` in batches of 5,000 (one statement each); ``group(...)
  .apply_async()`` of simple signatures in groups of 5,000.
* wake-up: time from a result being stored by another connection to ``get()``
  returning (LISTEN/NOTIFY; the fallback poll is 5 s, so anything well under that
  is a notification), median and p95 in ms.
* embedded: first start (initdb + start), start on existing data, connect to a
  running server — seconds, in a temporary data directory.

Uses ``CELERIAC_BROKER_URL`` (default: the test database) in a fresh schema, dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


BATCH = 5000


def publish_rate(app: object, count: int, how: str = "delay") -> tuple[float, float]:
    """(tasks/s, client CPU microseconds per task) of ``count`` publishes done ``how``:
    delay, transient (delay with delivery_mode="transient"), bulk (delay_many), group."""
    from celeriac import group

    task = app.tasks["bench.noop"]  # type: ignore[attr-defined]
    task.delay(0)  # warm the pool
    cpu, began = time.process_time(), time.perf_counter()
    if how == "delay":
        for i in range(count):
            task.delay(i)
    elif how == "transient":
        for i in range(count):
            task.apply_async((i,), delivery_mode="transient")
    elif how == "bulk":
        for start in range(0, count, BATCH):
            task.delay_many([(i,) for i in range(start, min(count, start + BATCH))])
    else:
        for start in range(0, count, BATCH):
            group(task.s(i) for i in range(start, min(count, start + BATCH))).apply_async()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return count / elapsed, cpu / count * 1e6


def wake_latencies(app: object, url: str, count: int) -> list[float]:
    from celeriac import states
    from celeriac.result import AsyncResult

    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(count):
            task_id = str(uuid.uuid4())
            stored = threading.Event()
            stamp: list[float] = []

            def store(
                task_id: str = task_id, stored: threading.Event = stored, stamp: list[float] = stamp
            ) -> None:
                stored.wait()
                time.sleep(0.05)  # get() is waiting by now
                stamp.append(time.perf_counter())
                app.backend.store_state(task_id, states.SUCCESS, 1, conn=conn)  # type: ignore[attr-defined]

            thread = threading.Thread(target=store)
            thread.start()
            result = AsyncResult(task_id, app=app)  # type: ignore[arg-type]
            stored.set()
            result.get(timeout=30)
            samples.append(time.perf_counter() - stamp[0])
            thread.join()
    return samples


def embedded_starts() -> dict[str, float]:
    from celeriac import embedded

    base = Path(tempfile.mkdtemp(prefix="celeriac-bench-"))
    pgdata = base / "pg"
    timings = {}
    try:
        began = time.perf_counter()
        embedded.embedded_url(pgdata)
        timings["first start (initdb + start)"] = time.perf_counter() - began
        began = time.perf_counter()
        embedded.embedded_url(pgdata)
        timings["already running in this process"] = time.perf_counter() - began
        embedded.stop(pgdata)
        began = time.perf_counter()
        embedded.embedded_url(pgdata)
        timings["start on existing data"] = time.perf_counter() - began
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(base, ignore_errors=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=2000)
    parser.add_argument("--bulk", type=int, default=50_000, help="tasks sent by delay_many")
    parser.add_argument("--group", type=int, default=10_000, help="tasks sent in groups")
    parser.add_argument("--wakeups", type=int, default=50)
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded server")
    options = parser.parse_args()
    url = os.environ.get("CELERIAC_BROKER_URL", DEFAULT_URL)
    schema = f"bench_client_{uuid.uuid4().hex[:8]}"
    from celeriac import Celery

    app = Celery("bench", broker=url, celeriac_schema=schema)
    app.task(name="bench.noop")(lambda x: x)
    try:
        runs = [
            ("delay()", "delay", options.publishes),
            ('delay() with delivery_mode="transient"', "transient", options.publishes),
            ("delay_many(), batches of 5,000", "bulk", options.bulk),
            ("group(...).apply_async(), groups of 5,000", "group", options.group),
        ]
        for label, how, count in runs:
            if count:
                rate, cpu = publish_rate(app, count, how)
                print(
                    f"publish: {rate:,.0f} tasks/s, client CPU {cpu:.1f} us/task ({label}, {count})"
                )
        samples = sorted(wake_latencies(app, url, options.wakeups))
        if samples:
            p95 = samples[int(0.95 * (len(samples) - 1))]
            print(
                f"get() wake-up after the result is stored: median "
                f"{statistics.median(samples) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
                f"({len(samples)} samples)"
            )
        for label, seconds in ({} if options.no_embedded else embedded_starts()).items():
            print(f"embedded PostgreSQL, {label}: {seconds:.2f} s")
    finally:
        app.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
