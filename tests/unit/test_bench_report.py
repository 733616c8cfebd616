"""bench.report's table of issue 6's targets, from a results file's figures."""

from __future__ import annotations

from typing import Any

from bench.report import targets_row, targets_table


def _rate(*values: float) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "median": ordered[len(ordered) // 2],
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(values),
        "values": list(values),
    }


def _results() -> dict[str, Any]:
    return {
        "meta": {"date": "2026-12-07T18:27:00+00:00"},
        "systems": {
            "celeriac": {
                "drain": {"rate": _rate(600, 900, 1200)},
                "enqueue": {"rate": _rate(150, 150, 150)},
                "enqueue_transient": {"rate": _rate(200, 200, 200)},
                "enqueue_bulk": {"rate": _rate(40_000, 50_000, 60_000)},
                "latency": {"roundtrip.p50": _rate(3, 3, 3)},
            },
            "celery_redis": {
                "drain": {"rate": _rate(100, 100, 100)},
                "enqueue": {"rate": _rate(100, 100, 100)},
                "latency": {"roundtrip.p50": _rate(2, 4, 3)},
            },
            # the faster of the two PostgreSQL queues is the one compared against
            "pgqueuer": {"drain": {"rate": _rate(300, 300, 400)}},
            "procrastinate": {"drain": {"rate": _rate(50, 50, 50)}},
        },
        "limit": {"batched": {"rate": _rate(4_500, 4_500, 4_500)}},
        "scale": {
            "processes": {"2": {"rate": _rate(1_000, 1_000, 1_000)}},
            "backlog": {"1000000": {"rate": _rate(850, 850, 850)}},
        },
    }


def test_each_ratio_is_taken_round_by_round_against_the_right_system() -> None:
    row = targets_row(_results())
    assert row["run"] == "12-07 18:27"
    assert row["drain vs Celery+Redis (≥ 5×)"] == "9.0×"  # rounds 6, 9, 12
    assert row["drain vs pgqueuer/procrastinate (≥ 3×)"] == "3.00×"  # rounds 2, 3, 3
    assert row["drain, % of pgbench batched (≥ 50)"] == "20"
    assert row["get() p50 (≤ 1×)"] == "1.00×"  # rounds 1.5, 0.75, 1
    assert row["durable delay() (≥ 1.5×)"] == "1.50×"
    assert row["transient delay()"] == "2.00×"  # against Celery+Redis's one delay mode
    assert row["bulk /s (≥ 50,000)"] == "50,000"
    assert row["1M backlog slower by % (≤ 20)"] == "15"


def test_a_run_without_a_system_or_workload_shows_a_dash() -> None:
    results = _results()
    del results["systems"]["pgqueuer"], results["systems"]["procrastinate"], results["scale"]
    table = targets_table([results, _results()])
    lines = table.splitlines()
    assert lines[0] == "| target | 12-07 18:27 | 12-07 18:27 |"
    assert "| drain vs pgqueuer/procrastinate (≥ 3×) | – | 3.00× |" in lines
    assert "| 1M backlog slower by % (≤ 20) | – | 15 |" in lines
