"""Admin pages for task results: filters, search by id, decoded detail, retry and revoke."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.utils.html import format_html

from celeriac.contrib.django.models import TaskResult


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@admin.register(TaskResult)
class TaskResultAdmin(admin.ModelAdmin):
    """Read-only task results; actions re-send (retry) or revoke the selected tasks."""

    list_display = ("task_id", "name", "status", "worker", "date_done", "runtime_display")
    list_filter = ("status", "name", "date_done")
    search_fields = ("=task_id",)
    date_hierarchy = "date_done"
    actions = ("retry_tasks", "revoke_tasks")
    fields = (
        "task_id",
        "name",
        "status",
        "worker",
        "queue",
        "retries",
        "date_started",
        "date_done",
        "runtime_display",
        "args_display",
        "kwargs_display",
        "result_display",
        "traceback_display",
        "parent_id",
        "root_id",
        "group_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="runtime")
    def runtime_display(self, obj: TaskResult) -> str:
        return "—" if obj.runtime is None else f"{obj.runtime:.3f} s"

    @admin.display(description="args")
    def args_display(self, obj: TaskResult) -> str:
        return str(format_html("<pre>{}</pre>", _pretty(obj.async_result().args)))

    @admin.display(description="kwargs")
    def kwargs_display(self, obj: TaskResult) -> str:
        return str(format_html("<pre>{}</pre>", _pretty(obj.async_result().kwargs)))

    @admin.display(description="result")
    def result_display(self, obj: TaskResult) -> str:
        result = obj.async_result()
        value = result.result
        text = repr(value) if isinstance(value, BaseException) else _pretty(value)
        return str(format_html("<pre>{}</pre>", text))

    @admin.display(description="traceback")
    def traceback_display(self, obj: TaskResult) -> str:
        return str(format_html("<pre>{}</pre>", obj.traceback or ""))

    @admin.action(description="Retry: send the selected tasks again (new ids, same arguments)")
    def retry_tasks(self, request: Any, queryset: Any) -> None:
        from celeriac._state import get_current_app

        app = get_current_app()
        sent = []
        for row in queryset:
            result = row.async_result()
            if row.name is None or result.args is None:
                self.message_user(
                    request, f"{row.task_id}: no stored arguments, not retried", messages.WARNING
                )
                continue
            sent.append(app.send_task(row.name, result.args, result.kwargs or {}).id)
        if sent:
            self.message_user(request, f"sent again as: {', '.join(sent)}", messages.SUCCESS)

    @admin.action(description="Revoke the selected tasks")
    def revoke_tasks(self, request: Any, queryset: Any) -> None:
        from celeriac._state import get_current_app

        ids = [row.task_id for row in queryset]
        get_current_app().control.revoke(ids)
        self.message_user(request, f"revoked {len(ids)} task(s)", messages.SUCCESS)
