"""The benchmark's smoke run (celeriac only, prefork and -P solo; tiny sizes) so bench/ does
not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_bench_smoke_runs_and_reports(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = _module(
        "bench.run",
        "--smoke",
        "--systems",
        "celeriac,celeriac_solo",
        "--in-place",
        "--workloads",
        "enqueue,drain,latency",
        "--dsn",
        dsn,
        "--json",
        str(out),
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["systems"]["celeriac"]
    assert "error" not in results, results
    assert results["enqueue"]["rate"]["median"] > 0
    assert results["enqueue_bulk"]["rate"]["median"] > 0
    assert results["enqueue_transient"]["rate"]["median"] > 0
    assert results["enqueue_transient"]["xacts_per_task"]["median"] == pytest.approx(1, abs=0.1)
    assert results["drain"]["rate"]["median"] > 0
    assert results["drain"]["xacts_per_task"]["median"] > 0
    assert results["latency"]["start.p99"]["median"] > 0
    assert results["latency"]["roundtrip.p50"]["median"] > 0
    assert "### Drain" in proc.stdout
    # -P solo workers, one per slot: the drain and latency only (the client is the same)
    solo = json.loads(out.read_text())["systems"]["celeriac_solo"]
    assert solo["drain"]["rate"]["median"] > 0 and solo["latency"]["roundtrip.p50"]["median"] > 0
    assert "enqueue" not in solo and solo["only"] == ["drain", "latency"]
    drain_table = proc.stdout.split("### Drain")[1].split("###")[0]
    assert "| celeriac -P solo | 500 |" in drain_table
    assert "celeriac -P solo" not in proc.stdout.split("### Drain")[0]  # not in Enqueue
    # the targets table reads a real results file (a smoke run has celeriac alone)
    targets = _module("bench.report", "--targets", str(out), timeout=30)
    assert targets.returncode == 0, targets.stderr[-3000:]
    bulk = results["enqueue_bulk"]["rate"]["median"]
    assert f"| bulk /s (≥ 50,000) | {bulk:,.0f} |" in targets.stdout


def _module(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m <module> ARGS`` from the repository's root."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _bench(module: str, dsn: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench.<module>`` in a throwaway schema of the test database."""
    return _module(
        f"bench.{module}", "--in-place", "--dsn", dsn, "--json", str(out), *args, timeout=100
    )


def test_load_smoke_drains_every_task_and_prunes(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = _bench("load", dsn, out, "--tasks", "2000", "--batch", "500", "--prune", "direct")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["publish"]["sent"] == 2000
    assert report["verify"] == {
        "sent": 2000,
        "results": {"SUCCESS": 2000},
        "jobs_left": 0,
        "ok": True,
    }
    assert sorted(report["drain"]["rss_mib"]) == ["0", "100", "25", "50", "75"]
    assert len(report["drain"]["rate_per_tenth"]) == 10
    assert set(report["sizes"]) == {
        "before",
        "backlog queued",
        "drained",
        "expired (UPDATE)",
        "pruned",
        "vacuumed",
        "vacuumed, no workers",
    }
    assert report["sizes"]["backlog queued"]["jobs"]["total_mib"] > 0
    assert "every task recorded" in proc.stdout


def test_soak_smoke_accounts_for_every_task(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = _bench("soak", dsn, out, "--seconds", "4", "--interval", "2", "--rate", "50")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    totals = json.loads(out.read_text())["totals"]
    assert totals["sent"] == 200
    assert totals["results"] == {"SUCCESS": 200}
    assert totals["missing"] == totals["jobs_left"] == totals["publish_errors"] == 0
    assert len(totals["intervals"]) == 2
    assert sum(row["sent"] for row in totals["intervals"]) == 200
    assert totals["start_p99_ms"] > 0
    assert "every task accounted for" in proc.stdout


def test_cpu_smoke_splits_cpu_time_by_process(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    proc = _bench("cpu", dsn, out, "--tasks", "3000", "--reps", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["parent"] > 0 and run["pool"] > 0 and run["postgres"] > 0
    assert run["total"] == pytest.approx(run["parent"] + run["pool"] + run["postgres"])
    assert run["tasks/s"] > 0 and run["xacts/task"] > 0
    # every process sleeps and wakes at least once in 3,000 tasks
    assert min(run[f"switches {k}"] for k in ("parent", "pool", "postgres")) > 0
    assert "ms of CPU, and context switches, per task" in proc.stdout


def test_direct_smoke_records_every_task_both_ways(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "direct.json"
    proc = _bench("direct", dsn, out, "--tasks", "2000", "--reps", "1", "--batch", "200")
    # (it exits non-zero when a direct process records fewer tasks than were queued)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads(out.read_text())
    (prefork,), (direct,) = runs["prefork"], runs["direct"]
    for run in (prefork, direct):
        assert run["processes"] > 0 and run["postgres"] > 0 and run["tasks/s"] > 0
        assert run["total"] == pytest.approx(run["processes"] + run["postgres"])
    assert "ms of CPU per task and tasks/s" in proc.stdout


def _script(module: str, dsn: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench.<module> --dsn DSN --json OUT ARGS`` (its own schema)."""
    return subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--dsn", dsn, "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_timeline_smoke_times_every_hop(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "timeline.json"
    proc = _script("timeline", dsn, out, "--calls", "5", "--gap", "0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "5 delay().get() round trips" in proc.stdout
    segments = json.loads(out.read_text())
    assert all(len(values) == 5 for values in segments.values()), segments
    total = segments.pop("total")
    for i, whole in enumerate(total):  # the hops add up to the round trip
        assert sum(values[i] for values in segments.values()) == pytest.approx(whole)


def test_floor_smoke_measures_each_floor(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    proc = _script("floor", dsn, out, "--calls", "20", "--trips", "5")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["durable"]["rate"] > 0 and figures["async"]["cpu_us"] > 0
    assert figures["durable_libpq"]["rate"] > 0
    asyncpg = figures["durable_asyncpg"]  # None where the bench extra is not installed
    assert asyncpg is None or asyncpg["rate"] > 0
    assert figures["round_trip_ms"]["n"] == 5 and figures["round_trip_ms"]["p50"] > 0
    assert "round trip" in proc.stdout


def test_publish_parts_smoke_times_each_variant_and_drops_its_schema(
    dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "publish_parts.json"
    proc = _script("publish_parts", dsn, out, "--calls", "20", "--rounds", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    variants = {"as sent", "no headers", "no results probe", "no NOTIFY", "libpq"}
    assert set(figures) == variants
    for runs in figures.values():
        assert len(runs) == 2
        assert all(run["wall_us"] > 0 and run["wal_bytes"] > 0 for run in runs)
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench\\_pub\\_%'"
        ).fetchone()
    assert left == (0,)


def test_executor_smoke_times_each_round_and_drops_its_schema(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "executor.json"
    proc = _script("executor", dsn, out, "--jobs", "30", "--rounds", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rounds = json.loads(out.read_text())["rounds"]
    assert len(rounds) == 2
    assert all(r["executor_us"] > 0 and r["to_batch_us"] > 0 for r in rounds), rounds
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench\\_executor\\_%'"
        ).fetchone()
    assert left == (0,)


def test_statements_smoke_counts_statements_per_task(dsn: str, tmp_path: Path) -> None:
    """With pg_stat_statements loaded: a lone job's get() is three statements (publish,
    claim, finish) and a drain's claims and finishes are batched. Without it (the usual
    server: loading it needs a restart) the script says how to load it."""
    out = tmp_path / "statements.json"
    prefix = f"celeriac_stmt_{uuid.uuid4().hex[:8]}"
    args = ["--systems", "celeriac", "--tasks", "200", "--roundtrips", "20", "--prefix", prefix]
    proc = _script("statements", dsn, out, *args)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if "pg_stat_statements" not in str(row and row[0]):
        assert proc.returncode != 0
        assert "pg_stat_statements is not loaded" in proc.stderr
        assert "shared_preload_libraries" in proc.stderr
        assert not out.exists()
        return
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())["celeriac"]
    trips = {s["query"]: s["calls_per_task"] for s in figures["roundtrip"]["statements"]}
    for name in ("publish_one", "claim", "finish_one"):
        assert trips.get(name) == 1.0, trips
    assert 3.0 <= figures["roundtrip"]["calls_per_task"] <= 3.5
    assert figures["drain"]["calls_per_task"] < 1, figures["drain"]  # batched
    assert figures["drain"]["wal_bytes_per_task"] > 0
