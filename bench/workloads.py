"""The workloads of issue 6. Each returns plain data for the JSON report.

Timing rules: a drain is timed from the last poll that saw no task done to the first
poll that saw all of them done (workers start-up is outside the window); enqueue is
timed around the producer calls only; latency is task start time minus the time just
before the producer's call, both read from the same clock (time.time()).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.common import StampFile, latency_summary, transactions, wait_until
from bench.systems.base import System

POLL = 0.05


def _xacts(system: System) -> int | None:
    """The system database's transaction count (read once its sessions have ended)."""
    return transactions(system.db_dsn) if system.db_dsn else None


def _per_task(before: int | None, after: int | None, n: int) -> float | None:
    return None if before is None or after is None else (after - before) / n


def enqueue(system: System, n: int, bulk: bool, transient: bool = False) -> dict[str, Any]:
    """Publish ``n`` no-op tasks (one at a time, ``transient``ly, or in bulk); tasks/s
    and database transactions per task."""
    publish = system.enqueue_bulk if bulk else system.enqueue_one
    if transient:
        publish = system.enqueue_transient
    system.reset()
    system.close_clients()  # (a session idle since an earlier workload flushes its counters now)
    before = _xacts(system)
    began = time.perf_counter()
    publish(n)
    elapsed = time.perf_counter() - began
    after = _xacts(system) if system.close_clients() else None
    system.reset()
    return {"rate": n / elapsed, "seconds": elapsed, "xacts_per_task": _per_task(before, after, n)}


def drain(
    system: System, n: int, concurrency: int, backlog: int | None = None, timeout: float = 900
) -> dict[str, Any]:
    """Queue ``backlog`` (default ``n``) tasks, start the workers, time ``n`` completions."""
    system.reset()
    system.fill(backlog or n)
    system.close_clients()  # (the fill's transactions are not the drain's)
    before = _xacts(system)
    workers = system.workers(concurrency).start()
    try:
        t0, t1 = _watch(system, workers, n, timeout)
        rss = workers.rss_mib()
    finally:
        workers.stop()
    after = _xacts(system)
    system.reset()
    return {
        "rate": n / (t1 - t0),
        "seconds": t1 - t0,
        "rss_mib": rss,
        "xacts_per_task": _per_task(before, after, n) if not backlog else None,
    }


def _watch(system: System, workers: Any, n: int, timeout: float) -> tuple[float, float]:
    deadline = time.monotonic() + timeout
    idle_at = time.monotonic()
    while True:
        now = time.monotonic()
        done = system.done()
        if done == 0:
            idle_at = now
        elif done >= n:
            return idle_at, now
        if now > deadline:
            raise TimeoutError(f"{system.name}: only {done}/{n} done after {timeout:.0f}s")
        workers.check_alive()
        time.sleep(POLL)


def latency(
    system: System, count: int, rate: float, roundtrips: int, concurrency: int = 2
) -> dict[str, Any]:
    """Idle warmed-up workers; ``count`` probes at ``rate``/s; then ``delay().get()`` trips."""
    system.reset()
    stamps = StampFile()
    workers = system.workers(concurrency).start()
    try:
        for _ in range(10):  # warm-up: workers ready, connections open
            system.send_started(time.time(), str(stamps.path))
        wait_until(lambda: _alive_count(workers, stamps) >= 10, 120, what="warm-up")
        time.sleep(0.5)
        stamps.clear()
        began = time.monotonic()
        for i in range(count):
            pause = began + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            system.send_started(time.time(), str(stamps.path))
        wait_until(lambda: _alive_count(workers, stamps) >= count, 120, what="latency probes")
        samples = [float(started) - float(sent) for sent, started in stamps.lines()]
        result: dict[str, Any] = {"start": latency_summary(samples)}
        if system.has_results and roundtrips:
            result["roundtrip"] = _roundtrips(system, roundtrips)
    finally:
        workers.stop()
        stamps.remove()
    system.reset()
    return result


def _alive_count(workers: Any, stamps: StampFile) -> int:
    workers.check_alive()
    return stamps.count()


def _roundtrips(system: System, count: int, budget: float = 20.0) -> dict[str, float]:
    system.roundtrip(-1)  # warm-up
    samples = []
    stop_at = time.monotonic() + budget
    for i in range(count):
        began = time.perf_counter()
        assert system.roundtrip(i) == i
        samples.append(time.perf_counter() - began)
        if time.monotonic() > stop_at and len(samples) >= 10:
            break
    return latency_summary(samples)


def fanout(
    system: System, requests: int = 20, parts: int = 4, seconds: float = 0.25, concurrency: int = 4
) -> dict[str, Any] | None:
    """``requests`` chords of ``parts`` sleeping tasks at once; wall time vs the ideal."""
    if not system.has_chords:
        return None
    system.reset()
    stamps = StampFile()
    workers = system.workers(concurrency).start()
    try:
        system.roundtrip(0) if system.has_results else None  # workers up and warm
        began = time.time()
        for request in range(requests):
            system.send_fanout(request, parts, seconds, str(stamps.path))
        wait_until(lambda: _alive_count(workers, stamps) >= requests, 120, what="chords")
        finished = {int(req): float(at) - began for req, at in stamps.lines()}
    finally:
        workers.stop()
        stamps.remove()
    system.reset()
    ideal = requests * parts * seconds / concurrency
    wall = max(finished.values())
    per_request = statistics.median(finished.values())
    order = [finished[r] for r in range(requests)]
    inversions = sum(
        1 for a in range(requests) for b in range(a + 1, requests) if order[a] > order[b] + 0.01
    )
    return {
        "wall": wall,
        "ideal": ideal,
        "overhead_pct": 100 * (wall / ideal - 1),
        "request_median": per_request,
        "request_median_pct_of_wall": 100 * per_request / wall,
        "out_of_order_pairs": inversions,
        "finished": order,
    }
