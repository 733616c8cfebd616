"""The task base class under Django: Celery's ``DjangoTask`` names, better results."""

from __future__ import annotations

import uuid
from typing import Any

from celeriac.result import AsyncResult
from celeriac.task import Task


class DjangoTask(Task):
    """Adds ``delay_on_commit`` / ``apply_async_on_commit`` (Celery 5.4's names).

    Celery defers the publish with ``transaction.on_commit`` and returns None. Here, with
    the broker in Django's database, the message is written in the current transaction
    on Django's connection — which already means "exists only if it commits" — so these
    are ``delay`` / ``apply_async``. With the broker elsewhere they defer to
    ``on_commit`` like Celery. Either way they return the ``AsyncResult``, whose id is
    usable at once (store it on your rows).
    """

    abstract = True

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``delay()`` that takes effect only when the surrounding transaction commits."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self, args: Any = None, kwargs: Any = None, using: str = "default", **options: Any
    ) -> AsyncResult:
        """``apply_async()`` that takes effect only when the transaction commits."""
        from django.db import connections, transaction

        from celeriac.contrib.django.transaction import publish_connection

        connection = connections[using]
        if not connection.in_atomic_block or publish_connection(self.app, using) is not None:
            return self.apply_async(args, kwargs, **options)
        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        transaction.on_commit(
            lambda: self.apply_async(args, kwargs, task_id=task_id, **options), using=using
        )
        return self.AsyncResult(task_id)


__all__ = ["DjangoTask"]
