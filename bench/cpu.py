"""CPU time per drained task, split by process: the worker's parent, its pool, PostgreSQL.

Throughput on a shared machine swings with the load; CPU time per task swings far less
(on this VM still by up to ±20 % from one minute to the next: compare A/B pairs run back
to back), so it is the figure to compare before and after a change to the hot path::

    python -m bench.cpu --tasks 40000 --pool prefork --concurrency 2 --reps 3

Queues ``--tasks`` no-op tasks with ``delay_many``, starts the workers, and reads
``/proc/<pid>/stat`` of the workers' process groups and of the database's other
PostgreSQL backends when the first result appears and again when the last one does (so
start-up is left out). Its own database, or ``--in-place`` a schema (bench/loadkit.py).

``--system pgqueuer`` (or ``procrastinate``) measures another queue the same way, with
``--concurrency`` worker processes as ``bench.run`` starts them; each is its own process
group, so all of their CPU shows as "parent".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.common import transactions
from bench.loadkit import add_options, celeriac_system
from bench.run import Databases, make_system
from bench.systems.base import System
from bench.systems.celeriac_sys import CeleriacSystem

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, seconds


def _switches(pid: int) -> int:
    """Context switches so far of all of a process's threads: each is a sleep and a
    wake-up, which cost far more CPU than a syscall on some VMs (this one: a pipe
    ping-pong between two processes, ~30 us of CPU a round trip)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            status = Path(f"/proc/{pid}/task/{task}/status").read_text()
            total += sum(
                int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
            )
    except OSError:
        pass
    return total


def snapshot(groups: set[int], dsn: str, skip: int) -> dict[str, float]:
    """CPU seconds so far of the workers' parents, their other processes, and the
    database's backends (all but ours); and the context switches of each."""
    parent = children = 0.0
    switches = {"parent": 0, "pool": 0, "postgres": 0}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and int(fields[2]) in groups:
            if int(entry) in groups:
                parent += _cpu(fields)
                switches["parent"] += _switches(int(entry))
            else:
                children += _cpu(fields)
                switches["pool"] += _switches(int(entry))
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
            switches["postgres"] += _switches(pid)
    cpu = {"parent": parent, "pool": children, "postgres": backends}
    return {**cpu, **{f"switches {k}": float(v) for k, v in switches.items()}}


def one_run(system: System, options: argparse.Namespace) -> dict[str, float]:
    dsn, tasks = system.db_dsn, options.tasks
    assert dsn is not None
    system.reset()
    system.enqueue_bulk(tasks)
    xacts0 = transactions(dsn)
    # our polls run on this connection, whose backend is left out of PostgreSQL's CPU
    skip = system.poll_conn().info.backend_pid
    if isinstance(system, CeleriacSystem):
        # cheap polls (no count of a growing table): a job's row goes with its result
        workers = system.workers(options.concurrency, count=options.workers)
        begun = f'SELECT EXISTS (SELECT 1 FROM "{system.schema}".results)'
        ended = f'SELECT NOT EXISTS (SELECT 1 FROM "{system.schema}".jobs)'
        started, finished = (lambda: bool(system.count(begun))), (lambda: bool(system.count(ended)))
    else:  # --concurrency processes, one job at a time each (as bench.run runs them)
        workers = system.workers(options.concurrency)
        started, finished = (lambda: system.done() > 0), (lambda: system.done() >= tasks)
    with workers:
        groups = {proc.pid for proc in workers.procs}
        while not started():
            workers.check_alive()
            time.sleep(0.002)
        t0, before = time.monotonic(), snapshot(groups, dsn, skip)
        first = system.done()
        while not finished():
            workers.check_alive()
            time.sleep(0.01)
        t1, after = time.monotonic(), snapshot(groups, dsn, skip)
    counted = system.done() - first
    if counted <= 0:
        raise SystemExit(f"all {tasks} tasks were done before the first reading: raise --tasks")
    per_task = {k: (after[k] - before[k]) / counted * 1000 for k in before}
    per_task["total"] = sum(v for k, v in per_task.items() if not k.startswith("switches"))
    for key in [k for k in per_task if k.startswith("switches")]:
        per_task[key] /= 1000  # a count per task, not ms
    per_task["tasks/s"] = counted / (t1 - t0)
    per_task["xacts/task"] = (transactions(dsn) - xacts0) / tasks
    return per_task


@contextmanager
def other_system(options: argparse.Namespace) -> Iterator[System]:
    """pgqueuer or procrastinate in its own database (bench.run's), dropped afterwards."""
    if options.in_place:
        raise SystemExit("--in-place runs celeriac only")
    dbs = Databases(
        argparse.Namespace(dsn=options.dsn, prefix=options.database, in_place=False, keep=False)
    )
    try:
        system = make_system(options.system, dbs, in_place=False)
        system.setup()
        try:
            yield system
        finally:
            system.teardown()
    finally:
        dbs.drop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(p, "celeriac_bench_cpu")
    p.add_argument("--tasks", type=int, default=40_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--system",
        choices=("celeriac", "pgqueuer", "procrastinate"),
        default="celeriac",
        help="the others run --concurrency worker processes (each counts as a 'parent')",
    )
    p.set_defaults(workers=1)
    options = p.parse_args(argv)
    if options.system == "celeriac":
        with celeriac_system(options) as system:
            runs = [one_run(system, options) for _ in range(options.reps)]
        what = f"{options.workers} worker(s) -P {options.pool} -c {options.concurrency}"
        if options.pool == "solo":  # (one -P solo worker per slot: CeleriacSystem.workers)
            what = f"{options.workers * options.concurrency} worker(s) -P solo"
    else:
        with other_system(options) as system:
            runs = [one_run(system, options) for _ in range(options.reps)]
        what = f"{options.system}, {options.concurrency} worker processes"
    print(f"{options.tasks} tasks, {what}, load {os.getloadavg()[0]:.1f}")
    print(f"ms of CPU, and context switches, per task (median [min-max] of {options.reps} runs)")
    for key in runs[0]:
        values = [r[key] for r in runs]
        fmt = "{:,.0f}" if key == "tasks/s" else "{:.2f}" if "switches" in key else "{:.3f}"
        med, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
        print(f"  {key:10} {med} [{lo}-{hi}]")
    if options.json:
        Path(options.json).write_text(json.dumps({"runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
