"""``get_task_logger`` / ``get_logger`` as in ``celery.utils.log``.

Task loggers are children of the ``celeriac.task`` logger, so one setting quiets or
redirects every task's logging; like Celery's they are named after the task.
"""

from __future__ import annotations

import logging

TASK_LOGGER = "celeriac.task"


def get_logger(name: str) -> logging.Logger:
    """A plain logger (``logging.getLogger``)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for a tasks module: named ``name``, propagating to ``celeriac.task``."""
    if name in {TASK_LOGGER, "celery.task"}:
        raise RuntimeError(f"logger name {name!r} is reserved")
    logger = logging.getLogger(name)
    if logger.parent is logging.root:
        logger.parent = logging.getLogger(TASK_LOGGER)
    return logger


__all__ = ["get_logger", "get_task_logger"]
