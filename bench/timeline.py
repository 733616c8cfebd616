"""Where a ``delay().get()`` round trip spends its time, hop by hop.

    python -m bench.timeline --calls 300 --gap 0.01

Starts a real prefork worker (``-c 2``) on a throwaway schema of ``--dsn``, sends
``--calls`` tasks one after another (``--gap`` seconds apart; 0 = back to back) and prints
p50/p90/p99 of each segment: the ``delay()`` call; from its return to the task body
starting (publish commit, NOTIFY, claim, pipe); from the body to the worker's pool reader
receiving the outcome, to the completer taking it, to its write starting; the write; from
the write's end to this process's result listener hearing it; and from there to ``get()``
returning. The worker's timestamps come from ``bench/timeline_app.py``'s trace; all
clocks are this machine's.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import psycopg

from bench.common import ROOT

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _percentiles(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "(none)"
    pick = [values[min(len(values) - 1, int(len(values) * q))] for q in (0.5, 0.9, 0.99)]
    return "p50 {:6.2f} ms  p90 {:6.2f}  p99 {:6.2f}".format(*(v * 1e3 for v in pick))


def _worker_trace(prefix: str) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """(task id -> (reader received, completer add), task id -> (write began, ended))."""
    adds: dict[str, tuple[float, float]] = {}
    writes: dict[str, Any] = {}
    for path in glob.glob(f"{prefix}.*.json"):
        with open(path) as f:
            events = json.load(f)
        os.unlink(path)
        received = 0.0
        for event in events:
            if event[0] == "recv":
                received = event[1]
            elif event[0] == "add" and event[3] == "finish":
                adds[event[2]] = (received, event[1])
            elif event[0] == "commit":
                for task_id in event[3]:
                    writes[task_id] = (event[1], event[2])
    return adds, writes


def run(dsn: str, calls: int, gap: float) -> dict[str, list[float]]:
    schema = "timeline_" + uuid.uuid4().hex[:8]
    trace = os.path.join(tempfile.mkdtemp(prefix="celeriac-timeline-"), "trace")
    os.environ.update(BENCH_DSN=dsn, BENCH_SCHEMA=schema)
    from bench import timeline_app
    from celeriac import backend

    heard: dict[str, float] = {}
    wake = backend.ResultListener._wake

    def timed_wake(self: Any, task_ids: list[str]) -> None:
        at = time.time()
        for task_id in task_ids:
            heard.setdefault(task_id, at)
        wake(self, task_ids)

    backend.ResultListener._wake = timed_wake  # type: ignore[method-assign]
    app, task = timeline_app.app, timeline_app.now
    app.ensure_schema()
    env = {**os.environ, "TIMELINE_TRACE": trace, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "celeriac", "-A", "bench.timeline_app", "worker"]
    worker = subprocess.Popen([*command, "-P", "prefork", "-c", "2", "-l", "warning"], env=env)
    rows = []
    try:
        for _ in range(20):  # warm up: connections, prepared statements
            task.delay().get(timeout=30)
        for _ in range(calls):
            sent = time.time()
            result = task.delay()
            returned = time.time()
            started = result.get(timeout=10)
            rows.append((result.id, sent, returned, started, time.time()))
            time.sleep(gap)
    finally:
        worker.terminate()
        worker.wait(30)
        app.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    adds, writes = _worker_trace(trace)
    segments: dict[str, list[float]] = {
        name: []
        for name in (
            "delay() call",
            "return -> task body starts",
            "body -> pool reader has the outcome",
            "reader -> completer.add",
            "add -> the write starts",
            "the write (one transaction)",
            "write ends -> listener hears",
            "heard -> get() returns",
            "total",
        )
    }
    for task_id, sent, returned, started, done in rows:
        if task_id not in adds or task_id not in writes or task_id not in heard:
            continue
        (received, added), (began, ended) = adds[task_id], writes[task_id]
        stamps = [sent, returned, started, received, added, began, ended, heard[task_id], done]
        for name, (a, b) in zip(segments, itertools.pairwise(stamps), strict=False):
            segments[name].append(b - a)
        segments["total"].append(done - sent)
    return segments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default=DEFAULT_DSN)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--gap", type=float, default=0.01, help="seconds between calls")
    p.add_argument("--json", help="also write the segments (seconds, per call) here")
    options = p.parse_args(argv)
    segments = run(options.dsn, options.calls, options.gap)
    print(f"{len(segments['total'])} delay().get() round trips, {options.gap:g} s apart")
    for name, values in segments.items():
        print(f"{name:38s} {_percentiles(values)}")
    if options.json:
        with open(options.json, "w") as f:
            json.dump(segments, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
