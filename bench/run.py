"""Run the benchmark: ``python -m bench.run [--smoke] [--systems a,b] [--workloads x,y]``.

Prints a table and writes JSON (``--json``, default bench/results.json). Each PostgreSQL
system gets its own database ``<prefix>_<system>`` on the server of ``--dsn`` (created and
dropped here; no other database is touched), Redis uses databases 10-12, RabbitMQ the
default vhost's ``celery`` queue. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import limit, report, workloads
from bench.common import drop_database, ensure_database, summary, with_database
from bench.systems.base import System

ALL_SYSTEMS = [
    "celeriac",
    "celery_redis",
    "celery_rabbitmq",
    "celery_sqla",
    "procrastinate",
    "pgqueuer",
]
ALL_WORKLOADS = ["enqueue", "drain", "latency", "fanout", "limit", "scale"]

FULL = {
    "enqueue": 10_000,
    "bulk": 20_000,
    "drain": 20_000,
    "slow": 2_000,
    "latency": 500,
    "rate": 100.0,
    "roundtrips": 100,
    "fanout": 20,
    "limit_s": 5,
    "scale_procs": [1, 2, 4],
    "scale_backlogs": [100_000],
    "scale_window": 10_000,
}
# the same workloads at half the sizes, for a run that must fit in ~20 minutes
MEDIUM = {**FULL, "enqueue": 5_000, "bulk": 10_000, "drain": 10_000, "roundtrips": 50}
SMOKE = {
    "enqueue": 200,
    "bulk": 500,
    "drain": 500,
    "slow": 200,
    "latency": 20,
    "rate": 100.0,
    "roundtrips": 10,
    "fanout": 2,
    "limit_s": 1,
    "scale_procs": [1, 2],
    "scale_backlogs": [1_000],
    "scale_window": 300,
}
SIZES = {"full": FULL, "medium": MEDIUM, "smoke": SMOKE}
# kombu's SQLAlchemy transport polls once a second and commits per message: its enqueue
# and drain use sizes["slow"] tasks (rates are rates; the run would take an hour otherwise)
SLOW = {"celery_sqla"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--reps", type=int, default=3, help="repetitions (median, min, max)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--sizes", choices=sorted(SIZES), default="full")
    p.add_argument("--big", action="store_true", help="scale: also a 1,000,000-task backlog")
    p.add_argument(
        "--dsn",
        default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="any database on the server; used to create the benchmark's databases",
    )
    p.add_argument("--prefix", default="celeriac_bench")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="celeriac only: use the --dsn database itself, in a throwaway schema",
    )
    p.add_argument("--json", default=str(Path(__file__).parent / "results.json"))
    p.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    p.add_argument(
        "--merge",
        action="store_true",
        help="add to the systems already in --json instead of starting afresh",
    )
    return p.parse_args(argv)


class Databases:
    """One database per PostgreSQL system, created on demand and dropped at the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.created: list[str] = []

    def dsn(self, system: str) -> str:
        if self.args.in_place:
            return str(self.args.dsn)
        name = f"{self.args.prefix}_{system}"
        ensure_database(self.args.dsn, name)
        self.created.append(name)
        return with_database(self.args.dsn, name)

    def drop(self) -> None:
        if not self.args.keep:
            for name in self.created:
                drop_database(self.args.dsn, name)


def make_system(name: str, dbs: Databases, in_place: bool) -> System:
    if name == "celeriac":
        from bench.systems.celeriac_sys import CeleriacSystem

        schema = f"bench_{uuid.uuid4().hex[:8]}" if in_place else "bench"
        return CeleriacSystem(dbs.dsn("celeriac"), schema)
    if in_place:
        raise SystemExit("--in-place runs celeriac only")
    if name.startswith("celery_"):
        from bench.systems.celery_sys import celery_systems

        dsn = dbs.dsn("celery_sqla") if name == "celery_sqla" else ""
        return {s.name: s for s in celery_systems({"celery_sqla": dsn})}[name]
    if name == "procrastinate":
        from bench.systems.procrastinate_sys import ProcrastinateSystem

        return ProcrastinateSystem(dbs.dsn("procrastinate"))
    if name == "pgqueuer":
        from bench.systems.pgqueuer_sys import PgqueuerSystem

        return PgqueuerSystem(dbs.dsn("pgqueuer"))
    raise SystemExit(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")


def repeat(reps: int, fn: Callable[[], dict[str, Any] | None]) -> list[dict[str, Any]]:
    runs = []
    for _ in range(reps):
        result = fn()
        if result is not None:
            runs.append(result)
    return runs


def fold(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric (nested dicts flattened with '.'): median, min, max over repetitions."""
    flat: dict[str, list[float]] = {}
    for run in runs:
        for key, value in _flatten(run).items():
            flat.setdefault(key, []).append(value)
    return {key: summary(values) for key, values in flat.items()}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def bench_system(
    system: System, wanted: list[str], sizes: dict[str, Any], reps: int, out: dict[str, Any]
) -> None:
    """Run the wanted workloads into ``out``; a failing workload is recorded, not fatal."""
    slow = system.name in SLOW
    one, bulk = (sizes["slow"],) * 2 if slow else (sizes["enqueue"], sizes["bulk"])
    drain_n = sizes["slow"] if slow else sizes["drain"]
    plan: list[tuple[str, Callable[[], dict[str, Any] | None]]] = [
        ("enqueue", lambda: workloads.enqueue(system, one, bulk=False)),
        ("enqueue_bulk", lambda: workloads.enqueue(system, bulk, bulk=True)),
        ("drain", lambda: workloads.drain(system, drain_n, 2)),
        (
            "latency",
            lambda: workloads.latency(system, sizes["latency"], sizes["rate"], sizes["roundtrips"]),
        ),
    ]
    if system.has_transient:

        def transient() -> dict[str, Any]:
            return workloads.enqueue(system, one, bulk=False, transient=True)

        plan.insert(1, ("enqueue_transient", transient))
    if system.has_chords:
        plan.append(("fanout", lambda: workloads.fanout(system, requests=sizes["fanout"])))
    for key, run in plan:
        if key.split("_")[0] not in wanted:
            continue
        print(f"  {system.label}: {key}", file=sys.stderr, flush=True)
        try:
            out[key] = fold(repeat(reps, run))
        except Exception as exc:  # keep the other workloads' numbers
            print(f"  {system.label}: {key} FAILED: {exc!r}", file=sys.stderr, flush=True)
            out.setdefault("errors", {})[key] = repr(exc)
    if "drain" in out:
        out["drain"]["tasks"] = drain_n


def bench_scale(system: System, sizes: dict[str, Any], reps: int, big: bool) -> dict[str, Any]:
    window = sizes["scale_window"]
    out: dict[str, Any] = {"window": window, "processes": {}, "backlog": {}}
    for procs in sizes["scale_procs"]:
        print(f"  scale: {procs} processes", file=sys.stderr, flush=True)
        out["processes"][str(procs)] = fold(
            repeat(reps, lambda p=procs: workloads.drain(system, window, p))
        )
    backlogs = list(sizes["scale_backlogs"]) + ([1_000_000] if big else [])
    for backlog in backlogs:
        print(f"  scale: backlog {backlog}", file=sys.stderr, flush=True)
        out["backlog"][str(backlog)] = fold(
            repeat(reps, lambda b=backlog: workloads.drain(system, window, 2, backlog=b))
        )
    return out


def run_system(
    name: str,
    dbs: Databases,
    args: argparse.Namespace,
    wanted: list[str],
    sizes: dict[str, Any],
    reps: int,
    results: dict[str, Any],
) -> None:
    system = make_system(name, dbs, args.in_place)
    system.setup()
    try:
        out = results["systems"][name] = {"label": system.label}
        bench_system(system, wanted, sizes, reps, out)
        if name == "celeriac" and "scale" in wanted:
            results["scale"] = bench_scale(system, sizes, reps, args.big)
    finally:
        system.teardown()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    sizes = SMOKE if args.smoke else SIZES[args.sizes]
    reps = 1 if args.smoke else args.reps
    wanted = [w for w in args.workloads.split(",") if w]
    names = [s for s in args.systems.split(",") if s]
    dbs = Databases(args)
    results: dict[str, Any] = {"meta": meta(args, sizes, reps), "systems": {}}
    if args.merge and Path(args.json).exists():
        previous = json.loads(Path(args.json).read_text())
        results = {**previous, "systems": previous.get("systems", {})}
        results.setdefault("meta", {})["merged"] = meta(args, sizes, reps)
    try:
        for name in names:
            print(f"{name}", file=sys.stderr, flush=True)
            try:
                run_system(name, dbs, args, wanted, sizes, reps, results)
            except Exception as exc:  # one broken system must not lose the others' numbers
                print(f"  {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
                results["systems"].setdefault(name, {"label": name})["error"] = repr(exc)
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        if "limit" in wanted and limit.available() and not args.in_place:
            print("limit (pgbench)", file=sys.stderr, flush=True)
            dsn = dbs.dsn("limit")
            results["limit"] = {
                script: fold(repeat(reps, lambda s=script: limit.run(dsn, s, sizes["limit_s"])))
                for script in limit.SCRIPTS
            }
    finally:
        dbs.drop()
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    return results


def meta(args: argparse.Namespace, sizes: dict[str, Any], reps: int) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "reps": reps,
        "sizes": sizes,
        "load_before": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
