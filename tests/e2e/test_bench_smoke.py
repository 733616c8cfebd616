"""The benchmark's smoke run (celeriac only, tiny sizes) so bench/ does not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_bench_smoke_runs_and_reports(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--systems",
            "celeriac",
            "--in-place",
            "--workloads",
            "enqueue,drain,latency",
            "--dsn",
            dsn,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["systems"]["celeriac"]
    assert "error" not in results, results
    assert results["enqueue"]["rate"]["median"] > 0
    assert results["enqueue_bulk"]["rate"]["median"] > 0
    assert results["drain"]["rate"]["median"] > 0
    assert results["drain"]["xacts_per_task"]["median"] > 0
    assert results["latency"]["start.p99"]["median"] > 0
    assert results["latency"]["roundtrip.p50"]["median"] > 0
    assert "### Drain" in proc.stdout
