"""A steady offered rate for minutes: latency, throughput and memory per minute.

    python -m bench.soak [--rate 100] [--minutes 10] [--workers 2] [--concurrency 2]

``--producers`` threads send no-op tasks with ``delay()`` on one fixed clock (task i is
due at start + i / rate; a late send does not shift the ones after it, so the offered
rate holds even when a call stalls; two producers keep it when one ``delay()`` takes
longer than 1 / rate, as on a busy machine) to ``--workers`` live, warmed-up workers. Every
``--interval`` seconds (a minute by default) it prints: tasks sent and completed in
that interval, enqueue → start latency p50/p99/max (the result's ``date_started``
minus the time just before ``delay()``), enqueue → completion p50/p99 (``date_done``:
the worker's transaction that stored the outcome), errors (failed publishes and
non-SUCCESS results), how far the sends fell behind their clock (a producer that cannot
keep up shows there, instead of as a lower rate) and the workers' resident memory. At
the end: totals, every task accounted for (a SUCCESS result each, no job left), the
workers' memory in the first versus the last interval and the ``jobs``/``results`` sizes.

Uses a database of its own (``--database``, created and dropped) on the ``--dsn``
server. Exits 1 when a task is unaccounted for or failed.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from bench.common import Workers, percentile, wait_until
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

POLL = 0.5  # seconds between reads of the new results


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="tasks offered per second")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seconds", type=float, help="duration in seconds (overrides --minutes)")
    p.add_argument("--interval", type=float, default=60.0, help="report every N seconds")
    p.add_argument("--producers", type=int, default=2, help="threads sharing the send clock")
    p.add_argument("--settle", type=float, default=120.0, help="wait for stragglers, s")
    add_options(p, "celeriac_soak")
    return p.parse_args(argv)


class Sender:
    """Sends task i at ``began + i / rate`` until ``until`` from ``producers`` threads
    (thread k sends k, k + producers, ...); hands what it sent to a queue."""

    def __init__(
        self, system: CeleriacSystem, rate: float, began: float, until: float, producers: int
    ) -> None:
        self.task = system.app.tasks["bench.noop"]
        self.rate, self.began, self.until = rate, began, until
        # (task id or None if the publish failed, time.time() and time.monotonic() before
        # it, how late it was on its clock)
        self.sent: queue.SimpleQueue[tuple[str | None, float, float, float]] = queue.SimpleQueue()
        self.errors: list[str] = []
        self.late = [0.0] * producers
        self.threads = [
            threading.Thread(target=self.run, args=(k,), name=f"soak-producer-{k}", daemon=True)
            for k in range(producers)
        ]

    @property
    def max_late(self) -> float:
        return max(self.late)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def is_alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def run(self, k: int) -> None:
        i = k
        while True:
            due = self.began + i / self.rate
            if due >= self.until:
                return
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            i += len(self.threads)
            at, now = time.time(), time.monotonic()
            late = max(0.0, now - due)
            self.late[k] = max(self.late[k], late)
            try:
                self.sent.put((self.task.delay().id, at, now, late))
            except Exception as exc:  # counted and shown, never fatal: the clock goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.sent.put((None, at, now, late))


@dataclass
class Interval:
    """What happened in one reporting interval."""

    sent: int = 0
    completed: int = 0
    errors: int = 0
    late: float = 0.0  # the latest send behind its clock, s
    start: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)

    def row(self, index: int, rss: float, length: float) -> dict[str, Any]:
        row: dict[str, Any] = {
            "interval": index,
            "end_s": (index + 1) * length,
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "send_late_max_ms": self.late * 1000,
            "rss_mib": rss,
            "loadavg": os.getloadavg()[0],
        }
        if self.start:
            row.update(
                start_p50_ms=percentile(self.start, 50) * 1000,
                start_p99_ms=percentile(self.start, 99) * 1000,
                start_max_ms=max(self.start) * 1000,
                done_p50_ms=percentile(self.done, 50) * 1000,
                done_p99_ms=percentile(self.done, 99) * 1000,
            )
        return row


def print_row(row: dict[str, Any]) -> None:
    lat = (
        f"{row['start_p50_ms']:7.1f} {row['start_p99_ms']:7.1f} {row['start_max_ms']:8.1f}  "
        f"{row['done_p50_ms']:7.1f} {row['done_p99_ms']:7.1f}"
        if "start_p50_ms" in row
        else f"{'–':>7} {'–':>7} {'–':>8}  {'–':>7} {'–':>7}"
    )
    print(
        f"{row['end_s']:6.0f} s {row['sent']:7,} {row['completed']:9,}  {lat}  "
        f"{row['errors']:6}  {row['send_late_max_ms']:7.0f}  {row['rss_mib']:6.0f}  "
        f"{row['loadavg']:5.2f}",
        flush=True,
    )


HEADER = (
    f"{'until':>8} {'sent':>7} {'completed':>9}  {'start p50':>7} {'p99':>7} {'max ms':>8}  "
    f"{'done p50':>7} {'p99 ms':>7}  {'errors':>6}  {'late ms':>7}  {'RSS':>6}  {'load':>5}"
)


class Collector:
    """Reads the results of the tasks sent so far and files them under intervals."""

    def __init__(
        self, system: CeleriacSystem, sender: Sender, length: float, seconds: float
    ) -> None:
        self.system, self.sender, self.length = system, sender, length
        self.count = max(1, math.ceil(seconds / length - 1e-9))  # stragglers: the last one
        self.pending: dict[str, float] = {}
        self.intervals: list[Interval] = []
        self.closed = 0  # intervals already reported: later news goes to the current one
        self.total_sent = 0
        self.outcomes: dict[str, int] = {}
        self.select = sql.SQL(
            "SELECT task_id, status, extract(epoch FROM date_started), "
            "extract(epoch FROM date_done) FROM {}.results WHERE task_id = ANY(%s)"
        ).format(sql.Identifier(system.schema))

    def current(self, at: float | None = None) -> Interval:
        """The interval of monotonic time ``at`` (now), stragglers in the last one."""
        elapsed = (time.monotonic() if at is None else at) - self.sender.began
        index = min(self.count - 1, max(self.closed, int(elapsed / self.length)))
        while len(self.intervals) <= index:
            self.intervals.append(Interval())
        return self.intervals[index]

    def collect(self) -> None:
        while True:
            try:
                task_id, at, when, late = self.sender.sent.get_nowait()
            except queue.Empty:
                break
            self.total_sent += 1
            self.current(when).sent += 1
            self.current(when).late = max(self.current(when).late, late)
            if task_id is None:
                self.current(when).errors += 1  # the publish failed
            else:
                self.pending[task_id] = at
        interval = self.current()
        ids = list(self.pending)
        for chunk in range(0, len(ids), 5000):
            for task_id, status, started, done in self.system.query(
                self.select, (ids[chunk : chunk + 5000],)
            ):
                sent = self.pending.pop(task_id)
                self.outcomes[status] = self.outcomes.get(status, 0) + 1
                interval.completed += 1
                if status != "SUCCESS":
                    interval.errors += 1
                elif started is not None:
                    interval.start.append(float(started) - sent)
                    interval.done.append(float(done) - sent)


def soak(system: CeleriacSystem, workers: Workers, options: argparse.Namespace) -> dict[str, Any]:
    seconds = options.seconds if options.seconds is not None else options.minutes * 60
    began = time.monotonic() + 0.1
    sender = Sender(system, options.rate, began, began + seconds, options.producers)
    collector = Collector(system, sender, options.interval, seconds)
    rows: list[dict[str, Any]] = []
    all_start: list[float] = []
    all_done: list[float] = []
    print(HEADER, flush=True)
    sender.start()

    def close_intervals(upto: int) -> None:
        while len(rows) < upto:
            item = collector.intervals[len(rows)]
            row = item.row(len(rows), workers.rss_mib(), options.interval)
            row["end_s"] = min(row["end_s"], seconds)
            rows.append(row)
            collector.closed = len(rows)
            all_start.extend(item.start)
            all_done.extend(item.done)
            print_row(row)

    settle_until = began + seconds + options.settle
    while sender.is_alive() or collector.pending or not sender.sent.empty():
        workers.check_alive()
        time.sleep(POLL)
        collector.collect()
        close_intervals(len(collector.intervals) - 1)
        if time.monotonic() > settle_until:
            break
    collector.current()
    close_intervals(len(collector.intervals))
    return summarise(system, sender, collector, rows, all_start, all_done, seconds)


def summarise(
    system: CeleriacSystem,
    sender: Sender,
    collector: Collector,
    rows: list[dict[str, Any]],
    start: list[float],
    done: list[float],
    seconds: float,
) -> dict[str, Any]:
    sent = collector.total_sent
    jobs = system.query(
        sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(system.schema))
    )[0][0]
    success = collector.outcomes.get("SUCCESS", 0)
    ok = success == sent and not collector.pending and not sender.errors and jobs == 0
    totals: dict[str, Any] = {
        "seconds": seconds,
        "offered_rate": sent / seconds,
        "sent": sent,
        "publish_errors": len(sender.errors),
        "results": collector.outcomes,
        "missing": len(collector.pending),
        "jobs_left": jobs,
        "max_send_late_ms": sender.max_late * 1000,
        "rss_first_mib": rows[0]["rss_mib"],
        "rss_last_mib": rows[-1]["rss_mib"],
        "intervals": rows,
        "ok": ok,
    }
    if start:
        totals.update(
            start_p50_ms=percentile(start, 50) * 1000,
            start_p99_ms=percentile(start, 99) * 1000,
            start_max_ms=max(start) * 1000,
            done_p50_ms=percentile(done, 50) * 1000,
            done_p99_ms=percentile(done, 99) * 1000,
        )
    print(
        f"total: sent {sent:,} ({sent / seconds:.1f}/s offered), results {collector.outcomes}, "
        f"missing {len(collector.pending)}, publish errors {len(sender.errors)}, jobs left "
        f"{jobs} -> " + ("every task accounted for" if ok else "TASKS UNACCOUNTED FOR OR FAILED"),
        flush=True,
    )
    if start:
        print(
            f"latency over the run: start p50 {totals['start_p50_ms']:.1f} ms, p99 "
            f"{totals['start_p99_ms']:.1f}, max {totals['start_max_ms']:.1f}; completion p50 "
            f"{totals['done_p50_ms']:.1f}, p99 {totals['done_p99_ms']:.1f}; sends at most "
            f"{totals['max_send_late_ms']:.1f} ms late",
            flush=True,
        )
    for error in sender.errors[:5]:
        print(f"  publish error: {error}", flush=True)
    return totals


def run(options: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "options": vars(options)}
    print(
        f"soak: {options.rate:g} tasks/s offered by {options.producers} producers, "
        f"{options.workers} workers × -c "
        f"{options.concurrency} ({options.pool}), {report['machine']['date']}, "
        f"load average {loadavg()}",
        flush=True,
    )
    with celeriac_system(options) as system:
        workers = start_workers(system, options, wait=True)
        try:
            warm_up(system)
            report["rss_start_mib"] = workers.rss_by_worker()
            report["totals"] = soak(system, workers, options)
            report["rss_end_mib"] = workers.rss_by_worker()
        finally:
            workers.stop()
        report["sizes"] = table_sizes(system)
    rows = report["totals"]
    print(
        f"worker RSS MiB: after warm-up {sum(report['rss_start_mib']):.0f}, first interval "
        f"{rows['rss_first_mib']:.0f}, last interval {rows['rss_last_mib']:.0f}, end "
        f"{sum(report['rss_end_mib']):.0f} "
        f"[{' + '.join(f'{x:.0f}' for x in report['rss_end_mib'])}]",
        flush=True,
    )
    print(format_sizes("tables at the end", report["sizes"]), flush=True)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report | {"ok": rows["ok"]}


def warm_up(system: CeleriacSystem) -> None:
    """Every worker process has connected and run something before the clock starts."""
    results = [system.app.tasks["bench.noop"].delay() for _ in range(20)]
    wait_until(lambda: all(r.ready() for r in results), 60, 0.05, "warm-up tasks")


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    report = run(options)
    write_json(options.json, report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
