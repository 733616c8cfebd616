"""Model-based sentiment: MiniLM embeddings + softmax head → P(negative, neutral, positive)."""

from __future__ import annotations

from typing import Any

from analysis.tools import Progress
from analysis.tools.minilm import load

BATCH = 32


def run(lines: list[str], progress: Progress) -> dict[str, Any]:
    encoder, head = load()
    labels: list[str] = [""] * len(lines)
    scores: list[float] = [0.0] * len(lines)
    done = 0
    neg, pos = head.classes.index("negative"), head.classes.index("positive")
    for positions, vectors in encoder.iter_encode(lines, BATCH):
        probs = head.predict_proba(vectors)
        for position, row in zip(positions, probs, strict=True):
            labels[position] = head.classes[int(row.argmax())]
            scores[position] = round(float(row[pos] - row[neg]), 4)
        done += len(positions)
        progress(done, len(lines))
    return {"scores": scores, "labels": labels}
