"""Workflows built from signatures: chain, group, chord (the canvas issue fills this in)."""

from __future__ import annotations

from typing import Any

from celeriac.canvas import Signature


def from_dict(data: dict[str, Any], app: Any = None) -> Signature:
    """Rebuild a signature (or workflow) from its dict form."""
    return Signature(data, app=app)


def join_with_or(left: Signature, right: Any) -> Any:
    """``left | right``."""
    raise NotImplementedError("chains are not implemented yet")
