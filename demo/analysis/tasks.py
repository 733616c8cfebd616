"""The demo's tasks: four analysis tools (a chord's header, the model tool as several
parts), combine (its body), notify (``link``), project_failed (``link_error``), the
sequential comparison run and the checker.

Tasks take a project id and read the file themselves: messages stay small, and a task
never sees a project that its publishing transaction did not commit.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from analysis.models import Project
from analysis.tools import TOOL_KEYS, registry
from analysis.uploads import parse_upload
from celeriac import shared_task, signals
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

logger = logging.getLogger(__name__)

LIMIT = settings.ANALYSIS_TIME_LIMIT
TOOL_OPTIONS = {"bind": True, "soft_time_limit": LIMIT, "time_limit": LIMIT + 5}


@signals.worker_process_init.connect(weak=False)
def load_model(**kwargs: Any) -> None:
    """Load (and warm up) the sentence model once per worker process, before its first
    task: the parallel run is not charged for what a sequential run would find done."""
    from analysis.tools.minilm import load

    encoder, _ = load()
    encoder.encode(["warm up the model with one sentence of ordinary length, please."] * 8)


def project_lines(project: Project) -> list[str]:
    """The project's lines, parsed exactly as the upload was validated."""
    with project.file.open("rb") as handle:
        data = handle.read()
    return parse_upload(
        project.name,
        data,
        project.text_column,
        settings.ANALYSIS_MAX_UPLOAD_BYTES,
        settings.ANALYSIS_MAX_LINES,
    ).lines


class ProgressReporter:
    """Stores PROGRESS with a percentage, at most every 0.2 s (and always at 100 %)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        percent = round(100 * done / total) if total else 100
        self.task.update_state(
            state="PROGRESS", meta={"percent": percent, "done": done, "total": total}
        )


def _fault(key: str, project: Project) -> None:
    """Fault injection for the failure-path tests and demos, off unless DEMO_FAULT is set.

    DEMO_FAULT="TOOL:hang" or "TOOL:error", optionally ":NAME" to affect only projects
    whose file name contains NAME (e.g. "model:error:broken").
    """
    tool, kind, name = [*os.environ.get("DEMO_FAULT", "").split(":"), "", "", ""][:3]
    if tool != key or name not in project.name:
        return
    if kind == "hang":
        while True:
            time.sleep(0.05)
    if kind == "error":
        raise RuntimeError(f"injected failure in the {key} tool (DEMO_FAULT)")


def run_tool(task: Any, project_id: int, key: str, part: int = 0, parts: int = 1) -> dict[str, Any]:
    """Run one tool (or one part of the model tool) on a project's lines; returns its JSON
    output with its own wall and CPU seconds (the CPU seconds feed the page's projection)."""
    from analysis.tools import sentiment_model  # numpy: in pool processes only

    project = Project.objects.get(pk=project_id)
    lines = project_lines(project)
    started, cpu = time.monotonic(), time.process_time()
    _fault(key, project)
    if key == "model":
        mine = sentiment_model.parts(lines, parts)
        positions = mine[part] if part < len(mine) else []  # fewer lines than parts
        output = sentiment_model.run_part(lines, positions, ProgressReporter(task))
    else:
        tool = {t.key: t for t in registry()}[key]
        output = tool.run(lines, ProgressReporter(task))
    output.update(
        tool=key,
        part=part,
        parts=parts,
        seconds=round(time.monotonic() - started, 3),
        cpu_seconds=round(time.process_time() - cpu, 3),
        cores=os.cpu_count(),
    )
    return output


@shared_task(name="analysis.vader", **TOOL_OPTIONS)
def analyse_vader(self: Any, project_id: int) -> dict[str, Any]:
    return run_tool(self, project_id, "vader")


@shared_task(name="analysis.model", **TOOL_OPTIONS)
def analyse_model(self: Any, project_id: int, part: int = 0, parts: int = 1) -> dict[str, Any]:
    """The model tool, or its part ``part`` of ``parts`` (a chord member each)."""
    return run_tool(self, project_id, "model", part, parts)


@shared_task(name="analysis.emotions", **TOOL_OPTIONS)
def analyse_emotions(self: Any, project_id: int) -> dict[str, Any]:
    return run_tool(self, project_id, "emotions")


@shared_task(name="analysis.phrases", **TOOL_OPTIONS)
def analyse_phrases(self: Any, project_id: int) -> dict[str, Any]:
    return run_tool(self, project_id, "phrases")


TOOL_TASKS = {
    "vader": analyse_vader,
    "model": analyse_model,
    "emotions": analyse_emotions,
    "phrases": analyse_phrases,
}


@shared_task(name="analysis.combine", time_limit=120)
def combine(results: list[dict[str, Any]], project_id: int, attempt: int) -> dict[str, Any]:
    """The chord body: combine the tools' outputs (the model's parts joined), mark the
    project a success."""
    from analysis.combine import combine as combine_outputs
    from analysis.combine import join_parts

    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        if project.attempts != attempt or project.status != Project.Status.PENDING:
            logger.info("project %s: stale combine of attempt %s ignored", project_id, attempt)
            return {"ignored": True}
        lines = project_lines(project)
        project.result = combine_outputs(lines, join_parts(results, len(lines)))
        project.result["tasks"] = [
            {key: out[key] for key in ("tool", "part", "seconds", "cpu_seconds")} for out in results
        ]
        project.status = Project.Status.SUCCESS
        project.finished_at = timezone.now()
        project.save()
    return {"project": project_id, "agreement": project.result["agreement"]}


@shared_task(name="analysis.notify")
def notify(project_id: int) -> str:
    """``link`` of the body: tell the owner that the analysis is ready."""
    project = Project.objects.get(pk=project_id)
    result = project.result or {}
    body = (
        f"The analysis of {project.name} ({project.line_count} lines) is ready.\n"
        f"Sentiment tools agree on {100 * result.get('agreement', 0):.0f}% of the lines.\n"
        f"{settings.DEMO_BASE_URL}/projects/{project.pk}/\n"
    )
    recipient = project.email or settings.DEMO_NOTIFY_EMAIL
    send_mail(f"Analysis ready: {project.name}", body, None, [recipient])
    return recipient


def failure_reason(task_id: str, project: Project | None = None) -> str:
    """A sentence for the user from a failed task's stored outcome.

    A failed tool also fails the chord's body (ChordError) and both errbacks run; for
    the body's, the failed tool's own reason is the readable one, so it is preferred.
    """
    from celeriac import current_app

    result = current_app.AsyncResult(task_id)
    key = (result.name or "").removeprefix("analysis.")
    if key == "combine" and project is not None:
        for tool_key in TOOL_KEYS:
            for tool_id in project.tool_task_ids(tool_key):
                if current_app.AsyncResult(tool_id).state == "FAILURE":
                    return failure_reason(tool_id)
    exc = result.result
    names = {t.key: t.label for t in registry()}
    who = names.get(key, "Combining the results" if key == "combine" else key or "a task")
    timed_out = isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded)
    if timed_out or "TimeLimit" in type(exc).__name__:
        return f"{who} did not finish within its time limit ({LIMIT:g} s)."
    return f"{who} failed: {type(exc).__name__}: {exc}"


@shared_task(name="analysis.project_failed")
def project_failed(task_id: str, project_id: int, attempt: int) -> str:
    """``link_error``: the project becomes failure with a readable reason (first one wins)."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        reason = failure_reason(task_id, project)
        if project.attempts == attempt and project.status == Project.Status.PENDING:
            project.status = Project.Status.FAILURE
            project.failure_reason = reason
            project.finished_at = timezone.now()
            project.save()
    return reason


@shared_task(name="analysis.sequential", bind=True, time_limit=4 * LIMIT + 10)
def sequential(self: Any, project_id: int) -> dict[str, Any]:
    """The same four tools one after another in one process: the honest comparison."""
    project = Project.objects.get(pk=project_id)
    lines = project_lines(project)
    per_tool = {}
    started, cpu = time.monotonic(), time.process_time()
    for index, tool in enumerate(registry()):
        began = time.monotonic()

        def progress(done: int, total: int, index: int = index) -> None:
            self.update_state(
                state="PROGRESS",
                meta={"percent": round(100 * (index + done / max(total, 1)) / 4)},
            )

        tool.run(lines, progress)
        per_tool[tool.key] = round(time.monotonic() - began, 3)
    outcome = {
        "seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "per_tool": per_tool,
    }
    outcome["cores"] = os.cpu_count()
    Project.objects.filter(pk=project_id).update(sequential={**outcome, "task_id": self.request.id})
    return outcome


@shared_task(name="analysis.check_projects")
def check_projects() -> list[int]:
    """Periodic: dispatch projects left unassigned or failed with attempts left (bounded)."""
    from analysis.dispatch import redispatch_due

    return redispatch_due()


__all__ = ["TOOL_KEYS", "TOOL_TASKS"]
