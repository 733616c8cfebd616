"""The project page's JSON: each tool's state and progress, the result, the timings."""

from __future__ import annotations

import os
from typing import Any

from analysis.models import Project
from analysis.timing import projection
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


WAITING = {"state": "PENDING", "percent": 0, "seconds": None}


def tool_state(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's card from its tasks' states (the model tool has several parts):
    any failure fails it, it succeeds when all parts did, it is in progress once one
    started; its percentage is the parts' mean, its seconds their sum (the work)."""
    if len(parts) == 1:
        return parts[0]
    states = [part["state"] for part in parts]
    failed = [s for s in ("FAILURE", "REVOKED", "RETRY") if s in states]
    if failed:
        state = failed[0]
    elif all(s == "SUCCESS" for s in states):
        state = "SUCCESS"
    elif any(s in ("STARTED", "PROGRESS", "SUCCESS") for s in states):
        state = "PROGRESS"
    else:
        state = "PENDING"
    done = states.count("SUCCESS")
    seconds = sum(p["seconds"] or 0 for p in parts) if done == len(parts) else None
    return {
        "state": state,
        "percent": round(sum(p.get("percent") or 0 for p in parts) / len(parts)),
        "seconds": None if seconds is None else round(seconds, 3),
        "parts": len(parts),
        "parts_done": done,
    }


def project_status(project: Project) -> dict[str, Any]:
    """Everything the page renders, as JSON-ready data."""
    ids = project.task_ids or {}
    sequential_id = (project.sequential or {}).get("task_id")
    tool_ids = {tool.key: project.tool_task_ids(tool.key) for tool in registry()}
    every = [task_id for task_ids in tool_ids.values() for task_id in task_ids]
    states = _task_states(
        [*every, ids.get("combine", ""), *([sequential_id] if sequential_id else [])]
    )
    tools = []
    for tool in registry():
        parts = [states.get(task_id, dict(WAITING)) for task_id in tool_ids[tool.key]]
        state = tool_state(parts or [dict(WAITING)])
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
        "combine": states.get(ids.get("combine", ""), dict(WAITING)),
        "result": result,
        "timing": {
            "parallel_wall": project.wall_seconds,
            "sequential": project.sequential,
            "sequential_state": states.get(sequential_id or "", None),
            "cores": os.cpu_count(),
            "projection": projection((result or {}).get("tasks", [])),
        },
    }
