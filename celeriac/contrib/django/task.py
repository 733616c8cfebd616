"""The task base class under Django: Celery's ``DjangoTask`` names, better results."""

from __future__ import annotations

from typing import Any

from celeriac.result import AsyncResult
from celeriac.task import Task


class DjangoTask(Task):
    """Adds ``delay_on_commit`` / ``apply_async_on_commit`` (Celery 5.4's names).

    Celery defers the publish with ``transaction.on_commit`` and returns None. Here the
    message is written in the current transaction on Django's connection, which already
    means "exists only if it commits", so these are ``delay`` / ``apply_async`` and they
    return the ``AsyncResult`` — with its id usable right away (store it on your rows).
    """

    abstract = True

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``delay()`` that takes effect only when the surrounding transaction commits."""
        return self.apply_async(args, kwargs)

    def apply_async_on_commit(
        self, args: Any = None, kwargs: Any = None, **options: Any
    ) -> AsyncResult:
        """``apply_async()`` that takes effect only when the transaction commits."""
        return self.apply_async(args, kwargs, **options)


__all__ = ["DjangoTask"]
