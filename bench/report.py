"""Results JSON → Markdown tables (printed by bench.run, pasted into bench/README.md).

Every figure is the median over the repetitions, with [min–max] when there were several.
A ratio to Celery+Redis is the median of the ratios of each round (``bench.run``
interleaves the systems round by round, so a round's figures were measured minutes
apart), or of the medians when a file holds no figures by round.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def fmt(stat: dict[str, float] | None, digits: int = 0, scale: float = 1.0) -> str:
    if not stat:
        return "–"
    med = f"{stat['median'] * scale:,.{digits}f}"
    if stat.get("n", 1) > 1:
        return f"{med} [{stat['min'] * scale:,.{digits}f}–{stat['max'] * scale:,.{digits}f}]"
    return med


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(value: dict[str, Any] | None, base: dict[str, Any] | None) -> float | None:
    """``value`` over ``base``: the median of the per-round ratios when both have one
    figure per round, else the ratio of their medians."""
    if not value or not base:
        return None
    mine, theirs = value.get("values"), base.get("values")
    if mine and theirs and len(mine) == len(theirs) and all(theirs):
        return float(statistics.median(a / b for a, b in zip(mine, theirs, strict=True)))
    return float(value["median"] / base["median"])


def _ratio(value: dict[str, Any] | None, base: dict[str, Any] | None, digits: int = 1) -> str:
    found = ratio(value, base)
    return "–" if found is None else f"{found:.{digits}f}×"


def _runs(data: dict[str, Any], workload: str) -> bool:
    """Whether the system runs ``workload`` at all (``celeriac_solo`` runs two)."""
    return workload in data.get("only", [workload])


def enqueue_table(systems: dict[str, Any]) -> str:
    base = systems.get("celery_redis", {}).get("enqueue", {}).get("rate")
    rows = []
    for data in systems.values():
        if not _runs(data, "enqueue"):
            continue
        one, bulk = data.get("enqueue", {}), data.get("enqueue_bulk", {})
        fast = data.get("enqueue_transient", {})
        rows.append(
            [
                data["label"],
                fmt(one.get("rate")),
                _ratio(one.get("rate"), base),
                fmt(fast.get("rate")),
                _ratio(fast.get("rate"), base),
                fmt(bulk.get("rate")),
                fmt(one.get("xacts_per_task"), 2),
                fmt(bulk.get("xacts_per_task"), 3),
            ]
        )
    return _table(
        [
            "system",
            "delay() tasks/s",
            "vs Celery+Redis",
            "transient delay() tasks/s",
            "vs Celery+Redis",
            "bulk tasks/s",
            "xacts/task (one)",
            "xacts/task (bulk)",
        ],
        rows,
    )


def drain_table(systems: dict[str, Any]) -> str:
    base = systems.get("celery_redis", {}).get("drain", {}).get("rate")
    rows = []
    for data in systems.values():
        d = data.get("drain")
        if not d:
            continue
        rows.append(
            [
                data["label"],
                f"{d.get('tasks', 0):,}",
                fmt(d.get("rate")),
                _ratio(d.get("rate"), base),
                fmt(d.get("rss_mib")),
                fmt(d.get("xacts_per_task"), 2),
            ]
        )
    return _table(
        ["system", "tasks", "tasks/s", "vs Celery+Redis", "worker RSS MiB", "xacts/task"], rows
    )


def latency_table(systems: dict[str, Any]) -> str:
    base = systems.get("celery_redis", {}).get("latency", {})
    rows = []
    for data in systems.values():
        lat = data.get("latency")
        if not lat:
            continue
        rows.append(
            [data["label"]]
            + [fmt(lat.get(f"start.{q}"), 1) for q in ("p50", "p95", "p99", "max")]
            + [fmt(lat.get(f"roundtrip.{q}"), 1) for q in ("p50", "p99")]
            + [
                _ratio(lat.get(key), base.get(key), 2)
                for key in ("start.p50", "start.p99", "roundtrip.p50")
            ]
        )
    header = ["system", "start p50 ms", "p95", "p99", "max", "get() p50 ms", "p99"]
    header += ["start p50 vs Celery+Redis", "start p99 vs", "get() p50 vs"]
    return _table(header, rows)


def fanout_table(systems: dict[str, Any]) -> str:
    rows = []
    for data in systems.values():
        f = data.get("fanout")
        if not _runs(data, "fanout"):
            continue
        if not f:
            rows.append([data["label"], "n/a (no chords)", "", "", "", ""])
            continue
        rows.append(
            [
                data["label"],
                fmt(f.get("wall"), 2),
                fmt(f.get("ideal"), 2),
                fmt(f.get("overhead_pct"), 1),
                fmt(f.get("request_median"), 2),
                fmt(f.get("request_median_pct_of_wall"), 0),
            ]
        )
    return _table(
        ["system", "wall s", "ideal s", "over ideal %", "request median s", "% of wall"], rows
    )


def limit_table(limit: dict[str, Any]) -> str:
    rows = [[script, fmt(data.get("rate"))] for script, data in limit.items()]
    return _table(["pgbench script (2 clients)", "jobs/s"], rows)


def scale_table(scale: dict[str, Any]) -> str:
    rows = [
        [
            f"{procs} processes, backlog {scale['window']:,}",
            fmt(data.get("rate")),
            fmt(data.get("rss_mib")),
        ]
        for procs, data in scale["processes"].items()
    ]
    rows += [
        [f"2 processes, backlog {int(backlog):,}", fmt(data.get("rate")), fmt(data.get("rss_mib"))]
        for backlog, data in scale["backlog"].items()
    ]
    return _table([f"celeriac drain of {scale['window']:,} tasks", "tasks/s", "RSS MiB"], rows)


def table(results: dict[str, Any]) -> str:
    systems = results.get("systems", {})
    parts = []
    if any("enqueue" in d for d in systems.values()):
        parts += ["### Enqueue", enqueue_table(systems)]
    if any("drain" in d for d in systems.values()):
        parts += ["### Drain (2 worker processes)", drain_table(systems)]
    if any("latency" in d for d in systems.values()):
        parts += [
            "### Latency at 100 tasks/s (enqueue → start; delay().get())",
            latency_table(systems),
        ]
    if any("fanout" in d for d in systems.values()):
        parts += ["### Fan-out: 20 chords of 4 × 0.25 s, concurrency 4", fanout_table(systems)]
    if results.get("limit"):
        parts += ["### PostgreSQL limit (pgbench)", limit_table(results["limit"])]
    if results.get("scale"):
        parts += ["### Scale (celeriac)", scale_table(results["scale"])]
    return "\n\n".join(parts)


def _stat(results: dict[str, Any], system: str, *keys: str) -> dict[str, Any] | None:
    found: Any = results.get("systems", {}).get(system, {})
    for key in keys:
        found = found.get(key) if isinstance(found, dict) else None
    return found or None


def _times(found: float | None, digits: int = 2) -> str:
    return "–" if found is None else f"{found:.{digits}f}×"


def targets_row(results: dict[str, Any]) -> dict[str, str]:
    """Issue 6's targets in one run: each ratio is celeriac's figure over the other
    system's in the same run (per round where the file has figures by round)."""

    def vs_redis(*keys: str) -> float | None:
        return ratio(_stat(results, "celeriac", *keys), _stat(results, "celery_redis", *keys))

    def median(stat: dict[str, Any] | None) -> float | None:
        return None if stat is None else float(stat["median"])

    drain = _stat(results, "celeriac", "drain", "rate")
    solo = _stat(results, "celeriac_solo", "drain", "rate")
    rivals = [_stat(results, name, "drain", "rate") for name in ("pgqueuer", "procrastinate")]
    rival = max((r for r in rivals if r), key=lambda r: r["median"], default=None)
    batched = results.get("limit", {}).get("batched", {}).get("rate")

    def of_batched(stat: dict[str, Any] | None) -> str:
        """A drain as a percentage of pgbench's batched limit."""
        return "–" if not (stat and batched) else f"{stat['median'] / batched['median'] * 100:.0f}"

    scale = results.get("scale") or {}
    small = scale.get("processes", {}).get("2", {}).get("rate")
    big = scale.get("backlog", {}).get("1000000", {}).get("rate")
    bulk = median(_stat(results, "celeriac", "enqueue_bulk", "rate"))
    over = median(_stat(results, "celeriac", "fanout", "overhead_pct"))
    share = median(_stat(results, "celeriac", "fanout", "request_median_pct_of_wall"))
    slower = None if not (small and big) else (1 - big["median"] / small["median"]) * 100
    return {
        "run": str(results.get("meta", {}).get("date", "?"))[:16].replace("T", " ")[5:],
        "drain vs Celery+Redis (≥ 5×)": _times(vs_redis("drain", "rate"), 1),
        "drain vs pgqueuer/procrastinate (≥ 3×)": _times(ratio(drain, rival)),
        "drain, % of pgbench batched (≥ 50)": of_batched(drain),
        "drain, -P solo workers, vs pgqueuer/procrastinate": _times(ratio(solo, rival)),
        "drain, -P solo workers, % of pgbench batched": of_batched(solo),
        "start p50 (≤ 1.5×)": _times(vs_redis("latency", "start.p50")),
        "start p99 (≤ 2×)": _times(vs_redis("latency", "start.p99")),
        "get() p50 (≤ 1×)": _times(vs_redis("latency", "roundtrip.p50")),
        "durable delay() (≥ 1.5×)": _times(vs_redis("enqueue", "rate")),
        "transient delay()": _times(
            ratio(
                _stat(results, "celeriac", "enqueue_transient", "rate"),
                _stat(results, "celery_redis", "enqueue", "rate"),
            )
        ),
        "bulk /s (≥ 50,000)": "–" if bulk is None else f"{bulk:,.0f}",
        "fan-out over ideal % (≤ 5)": "–" if over is None else f"{over:.1f}",
        "request median, % of wall (≤ 60)": "–" if share is None else f"{share:.0f}",
        "1M backlog slower by % (≤ 20)": "–" if slower is None else f"{slower:.0f}",
    }


def targets_table(runs: list[dict[str, Any]]) -> str:
    """One row per target of issue 6, one column per run (a results JSON)."""
    columns = [targets_row(results) for results in runs]
    if not columns:
        return ""
    rows = [[key] + [column[key] for column in columns] for key in list(columns[0])[1:]]
    return _table(["target"] + [column["run"] for column in columns], rows)


def main(argv: list[str]) -> None:
    """``python -m bench.report [file]``: the tables of one run (default
    bench/results.json); ``python -m bench.report --targets file...``: issue 6's targets,
    a row per target and a column per run."""
    if argv[:1] == ["--targets"]:
        print(targets_table([json.loads(Path(p).read_text()) for p in argv[1:]]))
        return
    path = Path(argv[0] if argv else Path(__file__).parent / "results.json")
    print(table(json.loads(path.read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
