"""The project page's JSON: each tool's state and progress, the result, the timings."""

from __future__ import annotations

import os
from typing import Any

from analysis.models import Project
from analysis.tools import registry
from celeriac import current_app
from celeriac.contrib.django.models import TaskResult


def _task_states(ids: list[str]) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    rows = TaskResult.objects.filter(task_id__in=ids).only(
        "task_id", "status", "date_started", "date_done"
    )
    for row in rows:
        runtime = None if row.runtime is None else round(row.runtime, 3)
        info: dict[str, Any] = {"state": row.status, "seconds": runtime}
        if row.status == "PROGRESS":
            meta = current_app.AsyncResult(row.task_id).info or {}
            info["percent"] = meta.get("percent", 0)
        elif row.status == "SUCCESS":
            info["percent"] = 100
        states[row.task_id] = info
    return states


def project_status(project: Project) -> dict[str, Any]:
    """Everything the page renders, as JSON-ready data."""
    ids = project.task_ids or {}
    sequential_id = (project.sequential or {}).get("task_id")
    states = _task_states([*ids.values(), *([sequential_id] if sequential_id else [])])
    waiting = {"state": "PENDING", "percent": 0, "seconds": None}
    tools = []
    for tool in registry():
        state = states.get(ids.get(tool.key, ""), dict(waiting))
        tools.append({"key": tool.key, "label": tool.label, "licence": tool.licence, **state})
    result = project.result if project.status == Project.Status.SUCCESS else None
    return {
        "id": project.pk,
        "name": project.name,
        "lines": project.line_count,
        "status": project.status,
        "failure_reason": project.failure_reason,
        "attempts": project.attempts,
        "tools": tools,
        "combine": states.get(ids.get("combine", ""), dict(waiting)),
        "result": result,
        "timing": {
            "parallel_wall": project.wall_seconds,
            "sequential": project.sequential,
            "sequential_state": states.get(sequential_id or "", None),
            "cores": os.cpu_count(),
        },
    }
