"""Emotions with the NRC Emotion Lexicon (the JSON that the NRCLex package ships)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from analysis.tools import Progress, chunks

EMOTIONS = ("joy", "trust", "anticipation", "surprise", "fear", "sadness", "anger", "disgust")
CHUNK = 2000
_WORD = re.compile(r"[a-z']+")


@functools.cache
def _lexicon() -> dict[str, list[str]]:
    # NRCLex's own loader pulls TextBlob/NLTK corpora; the lexicon file alone works offline
    path = resources.files("nrclex.data").joinpath("nrc_en.json")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def run(lines: list[str], progress: Progress) -> dict[str, Any]:
    lexicon = _lexicon()
    totals = dict.fromkeys(EMOTIONS, 0)
    best: dict[str, tuple[int, int]] = {}  # emotion -> (count, line index)
    with_emotion = 0
    for part in chunks(len(lines), CHUNK):
        for index in part:
            counts: dict[str, int] = {}
            for word in _WORD.findall(lines[index].lower()):
                for emotion in lexicon.get(word, ()):
                    if emotion in totals:
                        counts[emotion] = counts.get(emotion, 0) + 1
            with_emotion += bool(counts)
            for emotion, count in counts.items():
                totals[emotion] += count
                if count > best.get(emotion, (0, -1))[0]:
                    best[emotion] = (count, index)
        progress(part.stop, len(lines))
    return {
        "totals": totals,
        "lines_with_emotion": with_emotion,
        "examples": {emotion: lines[index] for emotion, (_, index) in best.items()},
    }
