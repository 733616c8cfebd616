"""Celery's ``celery.utils`` names that task modules import (``uuid``)."""

from __future__ import annotations

import uuid as _uuid


def uuid() -> str:
    """A new task id (Celery's ``celery.utils.uuid``)."""
    return str(_uuid.uuid4())


__all__ = ["uuid"]
