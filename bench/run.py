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
    "celeriac_solo",
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
    if name in ("celeriac", "celeriac_solo"):
        from bench.systems.celeriac_sys import CeleriacSystem

        schema = f"bench_{uuid.uuid4().hex[:8]}" if in_place else "bench"
        pool = "solo" if name == "celeriac_solo" else "prefork"
        return CeleriacSystem(dbs.dsn(name), schema, pool)
    if in_place:
        raise SystemExit("--in-place runs celeriac and celeriac_solo only")
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


Plan = dict[str, Callable[[], dict[str, Any] | None]]


def plan_of(system: System, sizes: dict[str, Any]) -> Plan:
    """The system's workloads, by result key, each one repetition."""
    slow = system.name in SLOW
    one, bulk = (sizes["slow"],) * 2 if slow else (sizes["enqueue"], sizes["bulk"])
    drain_n = sizes["slow"] if slow else sizes["drain"]
    plan: Plan = {"enqueue": lambda: workloads.enqueue(system, one, bulk=False)}
    if system.has_transient:
        plan["enqueue_transient"] = lambda: workloads.enqueue(
            system, one, bulk=False, transient=True
        )
    plan["enqueue_bulk"] = lambda: workloads.enqueue(system, bulk, bulk=True)
    plan["drain"] = lambda: workloads.drain(system, drain_n, 2)
    plan["latency"] = lambda: workloads.latency(
        system, sizes["latency"], sizes["rate"], sizes["roundtrips"]
    )
    if system.has_chords:
        plan["fanout"] = lambda: workloads.fanout(system, requests=sizes["fanout"])
    if system.workloads is not None:
        plan = {key: run for key, run in plan.items() if key.split("_")[0] in system.workloads}
    return plan


def bench_systems(
    systems: dict[str, System],
    wanted: list[str],
    sizes: dict[str, Any],
    reps: int,
    results: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """Run the wanted workloads of every system into ``results["systems"]``, one
    repetition of everything per round: each workload runs on every system back to back
    (in reverse order every other round), so a machine that slows down or speeds up
    during the run shifts every system's figures alike instead of one system's. A
    workload that fails on a system is recorded and not run on it again."""
    plans = {name: plan_of(system, sizes) for name, system in systems.items()}
    keys = list(dict.fromkeys(key for plan in plans.values() for key in plan))
    keys = [key for key in keys if key.split("_")[0] in wanted]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rep in range(reps):
        order = list(systems) if rep % 2 == 0 else list(systems)[::-1]
        for key in keys:
            for name in order:
                out = results["systems"][name]
                if key not in plans[name] or key in out.get("errors", {}):
                    continue
                label = f"{systems[name].label}: {key} ({rep + 1}/{reps})"
                print(f"  {label}", file=sys.stderr, flush=True)
                try:
                    result = plans[name][key]()
                except Exception as exc:  # keep the other workloads' numbers
                    print(f"  {label} FAILED: {exc!r}", file=sys.stderr, flush=True)
                    out.setdefault("errors", {})[key] = repr(exc)
                    continue
                if result is not None:
                    runs.setdefault((name, key), []).append(result)
                    out[key] = fold(runs[(name, key)])
        save()
    for name, system in systems.items():
        if "drain" in results["systems"][name]:
            slow = system.name in SLOW
            results["systems"][name]["drain"]["tasks"] = sizes["slow" if slow else "drain"]


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


def set_up(
    names: list[str], dbs: Databases, args: argparse.Namespace, results: dict[str, Any]
) -> dict[str, System]:
    """Every system made and set up; one that cannot be is recorded and left out."""
    systems: dict[str, System] = {}
    for name in names:
        try:
            system = make_system(name, dbs, args.in_place)
            system.setup()
        except Exception as exc:  # one broken system must not lose the others' numbers
            print(f"  {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
            results["systems"][name] = {"label": name, "error": repr(exc)}
            continue
        systems[name] = system
        results["systems"][name] = {"label": system.label}
        if system.workloads is not None:
            results["systems"][name]["only"] = list(system.workloads)
    return systems


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

    def save() -> None:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    systems: dict[str, System] = {}
    try:
        systems = set_up(names, dbs, args, results)
        bench_systems(systems, wanted, sizes, reps, results, save)
        if "celeriac" in systems and "scale" in wanted:
            try:
                results["scale"] = bench_scale(systems["celeriac"], sizes, reps, args.big)
            except Exception as exc:  # keep the other workloads' numbers
                print(f"  scale FAILED: {exc!r}", file=sys.stderr, flush=True)
                results["systems"]["celeriac"].setdefault("errors", {})["scale"] = repr(exc)
        save()
        if "limit" in wanted and limit.available() and not args.in_place:
            print("limit (pgbench)", file=sys.stderr, flush=True)
            dsn = dbs.dsn("limit")
            results["limit"] = {
                script: fold(repeat(reps, lambda s=script: limit.run(dsn, s, sizes["limit_s"])))
                for script in limit.SCRIPTS
            }
    finally:
        for name, system in systems.items():
            try:
                system.teardown()
            except Exception as exc:  # the databases are dropped all the same
                print(f"  {name}: teardown FAILED: {exc!r}", file=sys.stderr, flush=True)
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
