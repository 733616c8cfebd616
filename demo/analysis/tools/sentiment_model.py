"""Model-based sentiment: MiniLM embeddings + softmax head → P(negative, neutral, positive).

The model is ~95% of the demo's work, so it can run as several chord members, each on
one part of the lines (``parts`` says which; ``merge`` puts the parts back together).
Part k takes every n-th line in order of length: each part gets short and long lines
alike (equal work), and its own length-sorted batches pad as little as the whole file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analysis.tools import Progress
from analysis.tools.minilm import load

BATCH = 32


def parts(lines: Sequence[str], count: int) -> list[list[int]]:
    """Line positions of ``count`` parts of about equal work (fewer if lines are fewer)."""
    order = sorted(range(len(lines)), key=lambda i: len(lines[i]))
    count = max(1, min(count, len(lines)))
    return [sorted(order[k::count]) for k in range(count)]


def run_part(lines: Sequence[str], positions: Sequence[int], progress: Progress) -> dict[str, Any]:
    """Scores and labels of the lines at ``positions`` (in that order)."""
    encoder, head = load()
    subset = [lines[i] for i in positions]
    labels: list[str] = [""] * len(subset)
    scores: list[float] = [0.0] * len(subset)
    done = 0
    neg, pos = head.classes.index("negative"), head.classes.index("positive")
    for rows, vectors in encoder.iter_encode(subset, BATCH):
        probs = head.predict_proba(vectors)
        for row, p in zip(rows, probs, strict=True):
            labels[row] = head.classes[int(p.argmax())]
            scores[row] = round(float(p[pos] - p[neg]), 4)
        done += len(rows)
        progress(done, len(subset))
    return {"positions": list(positions), "scores": scores, "labels": labels}


def merge(outputs: Sequence[dict[str, Any]], total: int) -> dict[str, Any]:
    """One output for all lines from the parts' outputs (any order)."""
    labels: list[str] = [""] * total
    scores: list[float] = [0.0] * total
    for out in outputs:
        for position, score, label in zip(
            out["positions"], out["scores"], out["labels"], strict=True
        ):
            scores[position], labels[position] = score, label
    return {"scores": scores, "labels": labels}


def run(lines: list[str], progress: Progress) -> dict[str, Any]:
    """The whole file in one go (the sequential run, the tests)."""
    out = run_part(lines, range(len(lines)), progress)
    return {"scores": out["scores"], "labels": out["labels"]}
