"""Unmanaged models over celeriac's own tables (for the admin; Django never alters them)."""

from __future__ import annotations

from typing import Any

from django.db import models

from celeriac.contrib.django.schema import schema_name


def _table(name: str) -> str:
    # Django quotes db_table as one identifier; the embedded quotes make it schema.table.
    return f'{schema_name()}"."{name}'


class TaskResult(models.Model):
    """A row of ``<schema>.results``: one task's state, result and metadata."""

    task_id = models.TextField(primary_key=True)
    status = models.TextField(db_index=True)
    content_type = models.TextField()
    result = models.BinaryField(null=True)
    traceback = models.TextField(null=True)
    name = models.TextField(null=True, verbose_name="task name")
    request_type = models.TextField(null=True)
    request = models.BinaryField(null=True)
    worker = models.TextField(null=True)
    retries = models.IntegerField(null=True)
    queue = models.TextField(null=True)
    parent_id = models.TextField(null=True)
    root_id = models.TextField(null=True)
    group_id = models.TextField(null=True)
    date_started = models.DateTimeField(null=True)
    date_done = models.DateTimeField()
    expires_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = _table("results")
        ordering = ("-date_done",)
        verbose_name = "task result"

    def __str__(self) -> str:
        return f"{self.name or 'task'}[{self.task_id}] {self.status}"

    @property
    def runtime(self) -> float | None:
        """Seconds from start to end, when the task recorded its start."""
        if self.date_started is None or self.date_done is None:
            return None
        return float((self.date_done - self.date_started).total_seconds())

    def async_result(self) -> Any:
        """The celeriac ``AsyncResult`` (decodes args, result and exception)."""
        from celeriac._state import get_current_app

        return get_current_app().AsyncResult(self.task_id)


__all__ = ["TaskResult"]
