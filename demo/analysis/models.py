"""A Project: one uploaded file and the analysis of it."""

from __future__ import annotations

from django.db import models


class Project(models.Model):
    """Status moves unassigned → pending → success | failure (the checker may retry)."""

    class Status(models.TextChoices):
        UNASSIGNED = "unassigned"
        PENDING = "pending"
        SUCCESS = "success"
        FAILURE = "failure"

    name = models.CharField(max_length=255, help_text="the uploaded file's name")
    file = models.FileField(upload_to="uploads/%Y/%m/%d/")
    text_column = models.CharField(max_length=255, blank=True, help_text="CSV only")
    line_count = models.PositiveIntegerField(default=0)
    owner_session = models.CharField(max_length=64, db_index=True)
    email = models.EmailField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.UNASSIGNED, db_index=True
    )
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # the model tool's entry is a list: one task per part (dispatch.py)
    task_ids = models.JSONField(default=dict, blank=True, help_text="tool → celeriac task id")
    result = models.JSONField(null=True, blank=True)
    sequential = models.JSONField(null=True, blank=True, help_text="the one-by-one run")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    def tool_task_ids(self, key: str) -> list[str]:
        """The task ids of one tool: one, or one per part (the model tool), or none yet."""
        ids = (self.task_ids or {}).get(key) or []
        return [ids] if isinstance(ids, str) else list(ids)

    @property
    def wall_seconds(self) -> float | None:
        """Dispatch to combined result: the parallel run as the user waited for it."""
        if self.dispatched_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.dispatched_at).total_seconds()
