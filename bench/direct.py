"""The ceiling of a worker without a parent in the job's path, measured (issue 6).

    python -m bench.direct --tasks 40000 --procs 2 --batch 100 --reps 3

The drain targets celeriac misses (3× pgqueuer, half of pgbench's batched limit) would
need a design where each pool process claims, runs and records its own jobs, with no
parent process and no pipe in between. This measures what that design could reach at
best, before anyone builds it: ``--procs`` processes, each looping over celeriac's own
claim statement (``Broker.claim``), the executor's steps exactly as a prefork child runs
them (``Execution.run_safely``) and the batched finish (``Broker.commit``) on its own
connection. Alternated with it, a real ``celeriac worker -P prefork -c <procs>`` drains
the same backlog (``bench.cpu``'s measure).

It is a ceiling, not a worker: no time limits, no accounting for a process that dies,
no prefetch, no revokes, no events, no retries of a failed write — what the prefork
parent gives a Celery user. Each figure is CPU per task (each process's own, and the
database's backends) and tasks/s, from the first claim to the last write.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.apps.celeriac_app import make_app
from bench.cpu import one_run, snapshot
from bench.loadkit import add_options, celeriac_system
from bench.systems.celeriac_sys import CeleriacSystem
from celeriac.db.queries import query
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

RESULT_EXPIRES = 86400.0


def register_worker(app: Any, conn: psycopg.Connection[Any], name: str) -> int:
    """A row in the workers table for a process that claims jobs outside a worker: its id."""
    row = conn.execute(
        query("register_worker", app.database.schema),
        {
            "name": name,
            "hostname": "bench",
            "pid": os.getpid(),
            "pool": "direct",
            "concurrency": 1,
            "queues": ["celery"],
            "info": "{}",
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


def _drain(dsn: str, schema: str, batch: int, ready: Any, go: Any, out: Any, leave: Any) -> None:
    """One process: claim a batch, run it, record it; until a claim finds nothing. Its
    session stays open until ``leave``, so its backend's CPU can be read."""
    app = make_app(dsn, schema)
    name = f"direct-{os.getpid()}@bench"
    conn = app.database.connect()
    app.broker.prepare_claims(conn)
    worker_id = register_worker(app, conn, name)
    ready.release()
    go.wait()
    cpu, done = time.process_time(), 0
    while jobs := app.broker.claim(conn, "celery", batch, worker_id):
        outcomes = [Execution(app, job, name).run_safely() for job in jobs]
        accepted = app.broker.commit(conn, to_batch(outcomes), name, RESULT_EXPIRES)
        done += len(accepted)
    out.put((done, time.process_time() - cpu, time.monotonic()))
    leave.wait()
    conn.close()
    app.close()


def _report(out: Any, procs: list[Any]) -> tuple[int, float, float]:
    """The next process's (tasks recorded, CPU seconds, end time); fails at once when a
    process ended without reporting (its traceback is on stderr)."""
    while True:
        try:
            done, cpu, end = out.get(timeout=1)
            return int(done), float(cpu), float(end)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                code = dead[0].exitcode
                raise SystemExit(f"a direct process failed (exit code {code})") from None


def direct_run(system: CeleriacSystem, options: argparse.Namespace) -> dict[str, float]:
    dsn, tasks = system.db_dsn, options.tasks
    assert dsn is not None
    system.reset()
    system.enqueue_bulk(tasks)
    ctx = multiprocessing.get_context("spawn")
    ready, go, leave, out = ctx.Semaphore(0), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_drain,
            args=(dsn, system.schema, options.batch, ready, go, out, leave),
        )
        for _ in range(options.procs)
    ]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            if not ready.acquire(timeout=60):
                raise SystemExit("a direct process did not connect within 60 s")
        skip = system.poll_conn().info.backend_pid
        before = snapshot(set(), dsn, skip)
        began = time.monotonic()
        go.set()
        ends = [_report(out, procs) for _ in procs]
        after = snapshot(set(), dsn, skip)
    finally:  # (a failed run leaves no process waiting)
        go.set()
        leave.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    done = sum(end[0] for end in ends)
    if done != tasks:
        raise SystemExit(f"{done} of {tasks} tasks recorded")
    wall = max(end[2] for end in ends) - began
    python = sum(end[1] for end in ends) / done * 1000
    postgres = (after["postgres"] - before["postgres"]) / done * 1000
    return {
        "processes": python,
        "postgres": postgres,
        "total": python + postgres,
        "tasks/s": done / wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(p, "celeriac_bench_direct")
    p.add_argument("--tasks", type=int, default=40_000)
    p.add_argument("--procs", type=int, default=2, help="direct processes; prefork's -c")
    p.add_argument("--batch", type=int, default=100, help="jobs a claim takes")
    p.add_argument("--reps", type=int, default=3)
    p.set_defaults(workers=1)
    options = p.parse_args(argv)
    if options.procs < 1 or options.batch < 1 or options.tasks < 1:
        p.error("--procs, --batch and --tasks must be at least 1")
    options.concurrency = options.procs
    runs: dict[str, list[dict[str, float]]] = {"prefork": [], "direct": []}
    with celeriac_system(options) as system:
        for _ in range(options.reps):
            run = one_run(system, options)
            runs["prefork"].append(
                {
                    "processes": run["parent"] + run["pool"],
                    "postgres": run["postgres"],
                    "total": run["total"],
                    "tasks/s": run["tasks/s"],
                }
            )
            runs["direct"].append(direct_run(system, options))
    print(
        f"{options.tasks} tasks, {options.procs} processes, claims of {options.batch} "
        f"(direct), alternated {options.reps} times; load {os.getloadavg()[0]:.1f}"
    )
    print("ms of CPU per task and tasks/s: median [min-max]")
    for key in runs["prefork"][0]:
        cells = []
        for name in ("prefork", "direct"):
            values = [r[key] for r in runs[name]]
            fmt = "{:,.0f}" if key == "tasks/s" else "{:.3f}"
            med, lo, hi = (
                fmt.format(v) for v in (statistics.median(values), min(values), max(values))
            )
            cells.append(f"{name} {med} [{lo}-{hi}]")
        print(f"  {key:10} " + "   ".join(cells))
    if options.json:
        Path(options.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
