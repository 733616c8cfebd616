"""The four tools offline: outputs, chunked progress, and the numpy MiniLM being the model."""

from __future__ import annotations

import numpy as np

from analysis.combine import combine, join_parts
from analysis.status import tool_state
from analysis.timing import makespan, projection
from analysis.tools import registry, sentiment_model
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


def test_model_parts_cover_every_line_once_and_merge_back() -> None:
    lines = [*LINES, "ok", "Meh.", "Worst purchase I have ever made, do not buy this", "fine"]
    split = sentiment_model.parts(lines, 3)
    assert sorted(i for part in split for i in part) == list(range(len(lines)))
    assert [len(part) for part in split] == [3, 2, 2]
    # each part has short and long lines alike: part k is every 3rd line by length
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    assert sum(longest in part for part in split) == 1
    outs = [sentiment_model.run_part(lines, part, lambda d, t: None) for part in split[::-1]]
    merged = sentiment_model.merge(outs, len(lines))
    whole = sentiment_model.run(lines, lambda d, t: None)
    assert merged["labels"] == whole["labels"]
    assert np.allclose(merged["scores"], whole["scores"], atol=2e-4)  # batches pad differently
    assert len(sentiment_model.parts(lines[:2], 8)) == 2


def test_join_parts_gives_one_output_per_tool() -> None:
    lines = ["good", "bad", "meh"]
    results = [
        {"tool": "vader", "labels": ["positive"] * 3, "seconds": 0.1},
        {"tool": "model", "positions": [2], "scores": [0.0], "labels": ["neutral"], "seconds": 1},
        {
            "tool": "model",
            "positions": [0, 1],
            "scores": [0.9, -0.8],
            "labels": ["positive", "negative"],
            "seconds": 2,
        },
    ]
    outputs = join_parts(results, len(lines))
    assert outputs["vader"] is results[0]
    assert outputs["model"]["labels"] == ["positive", "negative", "neutral"]
    assert outputs["model"]["scores"] == [0.9, -0.8, 0.0]
    assert (outputs["model"]["parts"], outputs["model"]["seconds"]) == (2, 3)


def test_projection_schedules_tasks_like_free_worker_processes() -> None:
    assert makespan([1, 1, 1, 1], 2) == 2
    assert makespan([0.1, 0.1, 1, 1, 1, 1], 4) == 1.1  # quick tools first, then the parts
    assert makespan([3, 1, 1, 1], 8) == 3  # one long task bounds any number of cores
    tasks = [{"cpu_seconds": 0.1}] * 2 + [{"cpu_seconds": 1.0}] * 8
    out = projection(tasks)
    assert out["1"] == {"seconds": 8.2, "fraction": 1.0}
    assert out["2"]["seconds"] == 4.1 and out["4"]["seconds"] == 2.1
    assert out["8"]["fraction"] == round(1.1 / 8.2, 3)
    assert projection([{"tool": "x"}]) == {}


def test_a_tool_in_parts_shows_as_one_card() -> None:
    done = {"state": "SUCCESS", "percent": 100, "seconds": 1.0}
    going = {"state": "PROGRESS", "percent": 50, "seconds": None}
    waiting = {"state": "PENDING", "percent": 0, "seconds": None}
    failed = {"state": "FAILURE", "seconds": 0.5}
    assert tool_state([done]) == done and tool_state([going]) == going
    card = tool_state([done, going, waiting, waiting])
    assert card == {
        "state": "PROGRESS",
        "percent": 38,
        "seconds": None,
        "parts": 4,
        "parts_done": 1,
    }
    assert tool_state([waiting, waiting])["state"] == "PENDING"
    assert tool_state([done, done])["seconds"] == 2.0
    assert tool_state([done, failed, going])["state"] == "FAILURE"
