"""Results JSON → bench/results.png (``python -m bench.chart [results.json] [out.png]``).

Bars are medians; whiskers span min to max over the repetitions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent


def _bars(
    ax: Any, systems: dict[str, Any], key: str, metric: str, title: str, log: bool = False
) -> None:
    labels, medians, low, high = [], [], [], []
    for data in systems.values():
        stat = (data.get(key) or {}).get(metric)
        if not stat:
            continue
        labels.append(data["label"].replace("+", "+\n"))
        medians.append(stat["median"])
        low.append(stat["median"] - stat["min"])
        high.append(stat["max"] - stat["median"])
    colors = ["#2a7f3f" if label.startswith("celeriac") else "#8a8a8a" for label in labels]
    ax.bar(labels, medians, yerr=[low, high], color=colors, capsize=3)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    if log:
        ax.set_yscale("log")
    for index, value in enumerate(medians):
        ax.annotate(
            f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
            (index, value),
            ha="center",
            va="bottom",
            fontsize=7,
        )


def _with_transient(systems: dict[str, Any]) -> dict[str, Any]:
    """The systems, each followed by its opt-in faster enqueue (if measured) as one more
    bar: celeriac's ``delivery_mode="transient"``."""
    out: dict[str, Any] = {}
    for name, data in systems.items():
        out[name] = data
        if data.get("enqueue_transient"):
            out[f"{name}_transient"] = {
                "label": f"{data['label']}\n(transient)",
                "enqueue": data["enqueue_transient"],
            }
    return out


def render(results: dict[str, Any], out: Path) -> None:
    systems = results["systems"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    _bars(axes[0][0], systems, "drain", "rate", "drain: tasks/s (higher is better)")
    _bars(
        axes[0][1],
        _with_transient(systems),
        "enqueue",
        "rate",
        "enqueue, one delay() at a time: tasks/s",
    )
    _bars(axes[1][0], systems, "enqueue_bulk", "rate", "enqueue, bulk path: tasks/s", log=True)
    _bars(
        axes[1][1],
        systems,
        "latency",
        "start.p99",
        "enqueue → start p99 at 100/s: ms (lower is better)",
        log=True,
    )
    meta = results.get("meta", {})
    fig.suptitle(
        f"celeriac benchmark — {meta.get('date', '')}, {meta.get('cpus')} × "
        f"{meta.get('cpu', '')}, medians of {meta.get('reps')} runs",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "results.png"
    render(json.loads(source.read_text()), target)
    print(target)
