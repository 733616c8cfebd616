"""Key phrases with YAKE, over the whole file in chunks of lines."""

from __future__ import annotations

from typing import Any

from analysis.tools import Progress, chunks

CHUNK = 1000
TOP = 15


def run(lines: list[str], progress: Progress) -> dict[str, Any]:
    import yake

    extractor = yake.KeywordExtractor(lan="en", n=2, top=TOP * 2)
    found: dict[str, list[float]] = {}  # phrase -> its scores in the chunks it tops
    parts = chunks(len(lines), CHUNK)
    for part in parts:
        text = "\n".join(lines[i] for i in part)
        for phrase, score in extractor.extract_keywords(text):
            found.setdefault(phrase.lower(), []).append(float(score))
        progress(part.stop, len(lines))
    # a phrase that tops more chunks ranks first; YAKE scores are "lower is better"
    ranked = sorted(found.items(), key=lambda item: (-len(item[1]), min(item[1])))
    return {
        "phrases": [
            {"phrase": phrase, "chunks": len(scores), "score": round(min(scores), 5)}
            for phrase, scores in ranked[:TOP]
        ],
        "chunks": len(parts),
    }
