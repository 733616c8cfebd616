"""A backlog of a million small tasks: publish it in bulk, drain it with real workers.

    python -m bench.load [--tasks 1000000] [--workers 2] [--concurrency 2] [--json out.json]

1. **publish** ``--tasks`` no-op tasks with ``Task.delay_many()`` (one INSERT per
   ``--batch``), tasks/s overall and per 10 % of the backlog;
2. **drain** it with ``--workers`` ``celeriac worker -c --concurrency`` processes: the
   time and rate of every 10 % of the backlog (does the claim slow down as the table
   shrinks?) and the resident memory of each worker's whole process group at start,
   25/50/75 % and the end, plus the maximum seen (bounded, or growing with the work?);
3. **verify** that every task has a SUCCESS result and no job is left;
4. **prune**: expire the results (an UPDATE moves ``expires_at`` into the past — what a
   day of ``result_expires`` would do), let the maintenance leader of the running workers
   delete them (``--prune leader``, its next round, at most a minute; or ``--prune
   direct``: this script runs the same leader round itself at once), then VACUUM;
5. the ``jobs`` and ``results`` sizes (``pg_total_relation_size``, ``pg_indexes_size``)
   before, with the backlog queued, drained, expired, pruned and vacuumed.

Progress is read from the claim order: the tasks share a queue and priority and are
claimed in id order, so ``min(id)`` of the jobs still queued or running is a cheap
position in the backlog (off by the jobs in flight, a few dozen) — an exact count of a
million-row table every poll would load the server more than the workers do. The end
(no job left) and the result counts are exact.

Uses a database of its own (``--database``, created and dropped) on the ``--dsn`` server.
Exits 1 when a task is missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import sys
import time
from typing import Any

from psycopg import sql

from bench.common import Workers
from bench.loadkit import (
    add_options,
    celeriac_system,
    format_sizes,
    loadavg,
    machine,
    start_workers,
    table_sizes,
    write_json,
)
from bench.systems.celeriac_sys import CeleriacSystem
from celeriac.worker.maintenance import Maintenance

RSS_MARKS = (0, 25, 50, 75, 100)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=5000, help="tasks per delay_many() call")
    p.add_argument("--poll", type=float, default=0.25, help="progress poll interval, s")
    p.add_argument("--timeout", type=float, help="drain time limit, s (default: n/200, ≥ 600)")
    p.add_argument("--prune", choices=("leader", "direct"), default="leader")
    add_options(p, "celeriac_load")
    return p.parse_args(argv)


def publish(system: CeleriacSystem, n: int, batch: int) -> dict[str, Any]:
    """Queue ``n`` no-op tasks with delay_many(); the rate overall and per tenth."""
    noop = system.app.tasks["bench.noop"]
    began = prev_t = time.perf_counter()
    sent, marks = 0, [began]
    while sent < n:
        size = min(batch, n - sent)
        sent += len(noop.delay_many([()] * size))
        now = time.perf_counter()
        while len(marks) <= 10 and sent >= len(marks) * n / 10:  # interpolated in the batch
            marks.append(prev_t + (now - prev_t) * (len(marks) * n / 10 - sent + size) / size)
        prev_t = now
    seconds = time.perf_counter() - began
    tenths = [n / 10 / (b - a) for a, b in itertools.pairwise(marks)]
    print(
        f"published {sent:,} in {seconds:.1f} s: {sent / seconds:,.0f} tasks/s "
        f"(per 10 %: {' '.join(f'{r:,.0f}' for r in tenths)})",
        flush=True,
    )
    return {"sent": sent, "seconds": seconds, "rate": sent / seconds, "rate_per_tenth": tenths}


class Progress:
    """Where the drain is, from the lowest id still in ``jobs`` (see the module docstring)."""

    def __init__(self, system: CeleriacSystem, n: int) -> None:
        self.system, self.n = system, n
        self.lowest = sql.SQL("SELECT min(id) FROM {}.jobs").format(sql.Identifier(system.schema))
        self.first = self._min()
        if self.first is None:
            raise RuntimeError("no backlog to drain")

    def _min(self) -> int | None:
        row = self.system.poll_conn().execute(self.lowest).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def done(self) -> int:
        lowest = self._min()
        assert self.first is not None
        return self.n if lowest is None else min(self.n - 1, lowest - self.first)


def drain(
    system: CeleriacSystem, workers: Workers, n: int, poll: float, timeout: float
) -> dict[str, Any]:
    """Watch the workers drain the backlog: time per tenth, RSS at the marks."""
    progress = Progress(system, n)
    started = time.monotonic()
    idle_at, prev_t, prev_done = started, started, 0
    marks: list[float] = []  # when each tenth was crossed (interpolated between polls)
    rss: dict[int, list[float]] = {}
    rss_max, rss_at = 0.0, 0.0
    done = 0
    while done < n:
        if time.monotonic() - started > timeout:
            print(f"  drain timed out after {timeout:.0f} s at ~{done:,}", flush=True)
            break
        workers.check_alive()
        time.sleep(poll)
        now, done = time.monotonic(), progress.done()
        if done == 0:
            idle_at = prev_t = now
            continue
        while len(marks) < 10 and done >= (len(marks) + 1) * n / 10:
            target = (len(marks) + 1) * n / 10
            crossed = prev_t + (now - prev_t) * (target - prev_done) / max(1, done - prev_done)
            marks.append(crossed)
            _print_tenth(len(marks), n, marks, idle_at, workers)
        for mark in RSS_MARKS:
            if mark not in rss and done >= mark * n / 100:
                rss[mark] = workers.rss_by_worker()
        if now - rss_at >= 1.0:
            rss_max, rss_at = max(rss_max, workers.rss_mib()), now
        prev_t, prev_done = now, done
    rss_max = max([rss_max, *(sum(v) for v in rss.values())])
    seconds = (marks[-1] if len(marks) == 10 else time.monotonic()) - idle_at
    edges = [idle_at, *marks]
    tenths = [n / 10 / (b - a) for a, b in itertools.pairwise(edges)]
    print(
        f"drained ~{done:,} in {seconds:.1f} s: {done / seconds:,.0f} tasks/s; worker RSS MiB "
        + ", ".join(f"{m}%: {_rss(v)}" for m, v in sorted(rss.items()))
        + f"; max {rss_max:.0f}",
        flush=True,
    )
    return {
        "seconds": seconds,
        "rate": done / seconds,
        "rate_per_tenth": tenths,
        "rss_mib": {str(m): v for m, v in sorted(rss.items())},
        "rss_max_mib": rss_max,
        "startup_s": idle_at - started,
    }


def _print_tenth(k: int, n: int, marks: list[float], idle_at: float, workers: Workers) -> None:
    previous = marks[-2] if len(marks) > 1 else idle_at
    print(
        f"  {k * 10:3d}%  {k * n // 10:>10,}  at {marks[-1] - idle_at:7.1f} s  "
        f"{n / 10 / (marks[-1] - previous):8,.0f} tasks/s  RSS {workers.rss_mib():6.0f} MiB  "
        f"load {loadavg()}",
        flush=True,
    )


def _rss(per_worker: list[float]) -> str:
    return f"{sum(per_worker):.0f} [{'+'.join(f'{x:.0f}' for x in per_worker)}]"


def verify(system: CeleriacSystem, n: int) -> dict[str, Any]:
    """Exact counts: every task has a SUCCESS result, no job is left."""
    schema = sql.Identifier(system.schema)
    states = dict(
        system.query(
            sql.SQL("SELECT status, count(*) FROM {}.results GROUP BY status").format(schema)
        )
    )
    jobs = system.query(sql.SQL("SELECT count(*) FROM {}.jobs").format(schema))[0][0]
    success = int(states.get("SUCCESS", 0))
    ok = success == n and sum(states.values()) == n and jobs == 0
    print(
        f"verify: sent {n:,}, SUCCESS results {success:,}, all results "
        f"{sum(states.values()):,} {dict(states)}, jobs left {jobs:,} -> "
        + ("every task recorded" if ok else "MISSING TASKS"),
        flush=True,
    )
    return {
        "sent": n,
        "results": {k: int(v) for k, v in states.items()},
        "jobs_left": jobs,
        "ok": ok,
    }


def expire(system: CeleriacSystem) -> float:
    """Move every result's expiry into the past (what ``result_expires`` later would do)."""
    began = time.perf_counter()
    system.poll_conn().execute(
        sql.SQL("UPDATE {}.results SET expires_at = now() - interval '1 second'").format(
            sql.Identifier(system.schema)
        )
    )
    return time.perf_counter() - began


def prune(system: CeleriacSystem, mode: str, timeout: float) -> dict[str, float]:
    """Wait for the running workers' maintenance leader to prune (``leader``), or run the
    leader's round here (``direct``), until no result is left. Seconds in all, and how
    long the pruning itself took (from the start of the first DELETE batch seen in
    ``pg_stat_activity``; under a minute of it can be the leader's wait for its round)."""
    began = time.perf_counter()
    if mode == "direct":
        leader = Maintenance(system.app, "bench-load", 1.0, 60.0, 86400.0)
        conn = system.app.database.connect()
        try:
            while not leader.last_prune:  # another leader's round holds the lock: retry
                leader.round(rescue=False, conn=conn)
                time.sleep(0.01)
        finally:
            conn.close()
    left = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.results)").format(sql.Identifier(system.schema))
    pruning = (
        "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s"
    )
    pattern = f"%DELETE FROM%{system.schema}%results%expires_at < now()%"
    opened: dt.datetime | None = None
    while system.query(left)[0][0]:
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"results not pruned after {timeout:.0f} s")
        opened = opened or system.query(pruning, (pattern,))[0][0]
        time.sleep(0.2)
    seconds = time.perf_counter() - began
    open_s = (dt.datetime.now(dt.UTC) - opened).total_seconds() if opened else float("nan")
    print(
        f"pruned by the maintenance leader after {seconds:.1f} s (pruning itself, from "
        f"the first DELETE seen running to no result left: ~{open_s:.1f} s)",
        flush=True,
    )
    return {"seconds": seconds, "transaction_s": open_s}


def vacuum(system: CeleriacSystem) -> dict[str, Any]:
    """VACUUM both tables (what autovacuum would do); seconds and what it said about
    truncating the emptied tail of each table (VERBOSE)."""
    conn = system.poll_conn()
    said: list[str] = []

    def note(diag: Any) -> None:  # the truncation and the pages line of each table
        text = diag.message_primary or ""
        if "truncat" in text:
            said.append(text.splitlines()[0])
        elif text.startswith("finished vacuuming") and "pg_toast" not in text:
            table = text.split('"')[1].rsplit(".", 1)[-1]
            said.extend(
                f"{table} {line}" for line in text.splitlines() if line.startswith("pages:")
            )

    conn.add_notice_handler(note)
    began = time.perf_counter()
    try:
        conn.execute(
            sql.SQL("VACUUM (VERBOSE) {}, {}").format(
                sql.Identifier(system.schema, "jobs"), sql.Identifier(system.schema, "results")
            )
        )
    finally:
        conn.remove_notice_handler(note)
    seconds = time.perf_counter() - began
    print(f"VACUUM in {seconds:.1f} s: " + "; ".join(said), flush=True)
    return {"seconds": seconds, "notices": said}


def server(system: CeleriacSystem) -> dict[str, str]:
    """The server settings the table sizes depend on."""
    names = ("server_version", "autovacuum", "shared_buffers", "synchronous_commit")
    return {name: system.query(f"SHOW {name}")[0][0] for name in names}


def run(options: argparse.Namespace) -> dict[str, Any]:
    n = options.tasks
    report: dict[str, Any] = {"machine": machine(), "options": vars(options), "sizes": {}}
    print(
        f"load: {n:,} tasks, {options.workers} workers × -c {options.concurrency} "
        f"({options.pool}), {report['machine']['date']}, load average {loadavg()}",
        flush=True,
    )
    with celeriac_system(options) as system:

        def snapshot(label: str) -> None:
            report["sizes"][label] = table_sizes(system)
            print(format_sizes(label, report["sizes"][label]), flush=True)

        report["server"] = server(system)
        print(f"  server: {report['server']}", flush=True)
        snapshot("before")
        report["publish"] = publish(system, n, options.batch)
        snapshot("backlog queued")
        workers = start_workers(system, options, wait=False)
        try:
            timeout = options.timeout or max(600.0, n / 200)
            report["drain"] = drain(system, workers, n, options.poll, timeout)
            snapshot("drained")
            report["verify"] = verify(system, n)
            report["expire_s"] = expire(system)
            snapshot("expired (UPDATE)")
            report["prune"] = prune(system, options.prune, 600.0)
            snapshot("pruned")
            report["vacuum"] = vacuum(system)
            snapshot("vacuumed")
            report["rss_after_mib"] = workers.rss_by_worker()
        finally:
            workers.stop()
        report["vacuum_idle"] = vacuum(system)
        snapshot("vacuumed, no workers")
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    report = run(options)
    write_json(options.json, report)
    return 0 if report["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
