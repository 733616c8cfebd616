"""What the parallel run would take on other core counts, computed from its own tasks.

The machine at hand may have 2 cores; the question "and on 4 or 8?" is answered from the
CPU seconds each chord member used, scheduled the way a worker's free processes take
jobs from the queue (in publishing order, each to whichever process frees up first).
This is arithmetic, not a measurement: it assumes free cores and no queue overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CORES = (1, 2, 4, 8)


def makespan(durations: Sequence[float], workers: int) -> float:
    """Greedy list scheduling in the given order on ``workers`` processes: the last finish."""
    free = [0.0] * max(1, workers)
    for duration in durations:
        index = free.index(min(free))
        free[index] += duration
    return max(free)


def projection(tasks: Sequence[dict[str, Any]], cores: Sequence[int] = CORES) -> dict[str, Any]:
    """Per core count: computed seconds and the fraction of the one-process total."""
    cpu = [float(task.get("cpu_seconds") or 0.0) for task in tasks]
    total = sum(cpu)
    if not total:
        return {}
    return {
        str(n): {
            "seconds": round(makespan(cpu, n), 3),
            "fraction": round(makespan(cpu, n) / total, 3),
        }
        for n in cores
    }
