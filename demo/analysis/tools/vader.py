"""Rule-based sentiment with VADER: compound score in [-1, 1] per line."""

from __future__ import annotations

import functools
from typing import Any

from analysis.tools import Progress, chunks, label_of

CHUNK = 500


@functools.cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def run(lines: list[str], progress: Progress) -> dict[str, Any]:
    analyzer = _analyzer()
    scores: list[float] = []
    for part in chunks(len(lines), CHUNK):
        scores += [round(analyzer.polarity_scores(lines[i])["compound"], 4) for i in part]
        progress(len(scores), len(lines))
    return {"scores": scores, "labels": [label_of(s) for s in scores]}
