"""The chord body's arithmetic: combine the four tools' outputs into one result (no I/O)."""

from __future__ import annotations

from typing import Any

LABELS = ("negative", "neutral", "positive")


def join_parts(results: list[dict[str, Any]], total: int) -> dict[str, dict[str, Any]]:
    """The chord header's results as one output per tool: the model's parts merged (its
    seconds are the parts' sum: the work, not the wait)."""
    from analysis.tools.sentiment_model import merge

    by_tool: dict[str, list[dict[str, Any]]] = {}
    for out in results:
        by_tool.setdefault(out["tool"], []).append(out)
    outputs = {key: outs[0] for key, outs in by_tool.items()}
    model = by_tool["model"]
    outputs["model"] = {
        **merge(model, total),
        "tool": "model",
        "parts": len(model),
        "seconds": round(sum(out["seconds"] for out in model), 3),
    }
    return outputs


def distribution(labels: list[str]) -> dict[str, int]:
    return {label: labels.count(label) for label in LABELS}


def combine(lines: list[str], outputs: dict[str, dict[str, Any]], top: int = 5) -> dict[str, Any]:
    """Distribution per sentiment tool, their agreement, extreme lines, emotions, phrases."""
    vader, model = outputs["vader"], outputs["model"]
    agree = sum(a == b for a, b in zip(vader["labels"], model["labels"], strict=True))
    confusion = {
        v: {m: 0 for m in LABELS} for v in LABELS
    }  # rows: VADER's label, columns: the model's
    for v, m in zip(vader["labels"], model["labels"], strict=True):
        confusion[v][m] += 1
    mean = [(a + b) / 2 for a, b in zip(vader["scores"], model["scores"], strict=True)]
    order = sorted(range(len(lines)), key=lambda i: mean[i])
    gap = sorted(range(len(lines)), key=lambda i: -abs(vader["scores"][i] - model["scores"][i]))

    def row(i: int) -> dict[str, Any]:
        return {
            "line": i + 1,
            "text": lines[i],
            "vader": vader["scores"][i],
            "model": model["scores"][i],
        }

    def distinct(indexes: list[int]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        rows = []
        for i in indexes:
            if lines[i] not in seen and len(rows) < top:
                seen.add(lines[i])
                rows.append(row(i))
        return rows

    return {
        "lines": len(lines),
        "distribution": {
            "vader": distribution(vader["labels"]),
            "model": distribution(model["labels"]),
        },
        "agreement": round(agree / len(lines), 4) if lines else 0.0,
        "confusion": confusion,
        "most_positive": distinct(order[::-1]),
        "most_negative": distinct(order),
        "disagreements": distinct([i for i in gap if vader["labels"][i] != model["labels"][i]]),
        "emotions": outputs["emotions"]["totals"],
        "emotion_examples": outputs["emotions"]["examples"],
        "phrases": outputs["phrases"]["phrases"],
        "seconds": {key: out.get("seconds") for key, out in outputs.items()},
    }
