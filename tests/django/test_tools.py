"""The four tools offline: outputs, chunked progress, and the numpy MiniLM being the model."""

from __future__ import annotations

import numpy as np

from analysis.combine import combine
from analysis.tools import registry
from analysis.tools.minilm import load

LINES = [
    "I absolutely love this phone, the battery lasts forever! 😍",
    "The delivery was late and the box was damaged. Not happy at all.",
    "The package arrived on Tuesday.",
]


def run_all(lines: list[str]) -> tuple[dict[str, dict], dict[str, list[tuple[int, int]]]]:
    outputs, calls = {}, {}
    for tool in registry():
        seen: list[tuple[int, int]] = []
        outputs[tool.key] = tool.run(
            lines, lambda done, total, seen=seen: seen.append((done, total))
        )
        calls[tool.key] = seen
    return outputs, calls


def test_numpy_minilm_matches_sentence_transformers() -> None:
    # cosines that sentence-transformers gives for these sentences (reference measurement)
    encoder, head = load()
    vectors = encoder.encode(LINES)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert abs(float(vectors[0] @ vectors[1]) - 0.244) < 0.002
    assert abs(float(vectors[0] @ vectors[2]) - 0.048) < 0.002
    probs = head.predict_proba(vectors)
    assert [head.classes[i] for i in probs.argmax(1)] == ["positive", "negative", "neutral"]


def test_tools_and_combination() -> None:
    outputs, _ = run_all(LINES)
    assert outputs["vader"]["labels"] == ["positive", "negative", "neutral"]
    assert outputs["model"]["labels"] == ["positive", "negative", "neutral"]
    assert outputs["emotions"]["totals"]["joy"] >= 1
    assert any(p["phrase"] == "damaged" for p in outputs["phrases"]["phrases"])
    result = combine(LINES, outputs)
    assert result["agreement"] == 1.0
    assert result["most_positive"][0]["line"] == 1
    assert result["most_negative"][0]["line"] == 2
    assert result["disagreements"] == []


def test_large_input_is_processed_in_chunks_with_progress() -> None:
    lines = [f"line {i} is {'great' if i % 2 else 'awful'}" for i in range(2500)]
    for tool in registry():
        if tool.key == "model":
            continue  # chunked by batches of 32: covered by the e2e progress screenshots
        seen: list[tuple[int, int]] = []
        tool.run(lines, lambda done, total, seen=seen: seen.append((done, total)))
        assert len(seen) >= 2, tool.key
        assert seen[-1] == (2500, 2500)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
