"""CPU time per drained task, split by process: the worker's parent, its pool, PostgreSQL.

Throughput on a shared machine swings with the load; CPU time per task hardly does, so
this is the figure to compare before and after a change to the worker's hot path::

    python -m bench.cpu --tasks 40000 --pool prefork -c 2 --reps 3

Queues ``--tasks`` no-op tasks with ``delay_many``, starts one worker, and reads
``/proc/<pid>/stat`` of the worker's process group and of its PostgreSQL backends when the
first result appears and again when the last one does (so start-up is left out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import psycopg

from bench.common import drop_database, ensure_database, transactions, with_database
from bench.systems.celeriac_sys import CeleriacSystem

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, seconds


def snapshot(group: int, dsn: str, skip: int) -> dict[str, float]:
    """CPU seconds so far of the worker's parent, its other processes, and its backends."""
    parent = children = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and int(fields[2]) == group:
            if int(entry) == group:
                parent += _cpu(fields)
            else:
                children += _cpu(fields)
    backends = 0.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND pid <> %s",
            (skip,),
        ).fetchall()
    for (pid,) in pids:
        if fields := _stat(pid):
            backends += _cpu(fields)
    return {"parent": parent, "pool": children, "postgres": backends}


def one_run(system: CeleriacSystem, dsn: str, tasks: int, concurrency: int) -> dict[str, float]:
    system.reset()
    system.enqueue_bulk(tasks)
    xacts0 = transactions(dsn)
    # cheap polls (no count of a growing table): a job's row goes in the result's transaction
    poll = system.poll_conn()
    skip = poll.info.backend_pid
    started = f'SELECT EXISTS (SELECT 1 FROM "{system.schema}".results)'
    finished = f'SELECT NOT EXISTS (SELECT 1 FROM "{system.schema}".jobs)'
    with system.workers(concurrency) as workers:
        group = workers.procs[0].pid
        while not system.count(started):
            workers.check_alive()
            time.sleep(0.002)
        t0, before = time.monotonic(), snapshot(group, dsn, skip)
        first = system.done()
        while not system.count(finished):
            workers.check_alive()
            time.sleep(0.01)
        t1, after = time.monotonic(), snapshot(group, dsn, skip)
    counted = system.done() - first
    per_task = {k: (after[k] - before[k]) / counted * 1000 for k in before}
    per_task["total"] = sum(per_task.values())
    per_task["tasks/s"] = counted / (t1 - t0)
    per_task["xacts/task"] = (transactions(dsn) - xacts0) / tasks
    return per_task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dsn", default=os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1/postgres")
    )
    p.add_argument("--tasks", type=int, default=40_000)
    p.add_argument("--pool", default="prefork")
    p.add_argument("-c", "--concurrency", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    dsn = with_database(args.dsn, "celeriac_bench_cpu")
    ensure_database(args.dsn, "celeriac_bench_cpu")
    system = CeleriacSystem(dsn, pool=args.pool)
    try:
        system.setup()
        runs = [one_run(system, dsn, args.tasks, args.concurrency) for _ in range(args.reps)]
    finally:
        system.teardown()
        drop_database(args.dsn, "celeriac_bench_cpu")
    load = os.getloadavg()[0]
    print(f"{args.tasks} tasks, -P {args.pool} -c {args.concurrency}, load {load:.1f}")
    print("ms of CPU per task (median [min-max] of", args.reps, "runs)")
    for key in runs[0]:
        values = [r[key] for r in runs]
        fmt = "{:,.0f}" if key == "tasks/s" else "{:.3f}"
        med, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
        print(f"  {key:10} {med} [{lo}-{hi}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
