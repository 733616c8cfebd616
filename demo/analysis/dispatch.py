"""Publishing a project's work: a chord of the four tools, in the caller's transaction.

The model tool is ~95% of the work, so it goes into the chord as several parts (tasks)
after the three quick tools: four tasks alone would leave every core but one idle while
the model runs. ``ANALYSIS_MODEL_PARTS`` (8) parts let 2, 4 or 8 worker processes share
it evenly; files too short for that get fewer parts (at least ``MIN_PART_LINES`` lines).

``dispatch`` must run inside ``transaction.atomic()``: the messages are written on
Django's connection in that transaction (celeriac's Django integration), so the project
row and its tasks commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from analysis.models import Project
from analysis.tools import TOOL_KEYS

MIN_PART_LINES = 16


def model_parts(line_count: int) -> int:
    """How many tasks the model tool becomes (all of them if the count is not known)."""
    most = max(1, int(settings.ANALYSIS_MODEL_PARTS))
    if line_count <= 0:
        return most
    return max(1, min(most, -(-line_count // MIN_PART_LINES)))


def dispatch(project: Project) -> Project:
    """Publish the chord for ``project`` (a new attempt) and mark it pending."""
    from analysis.tasks import TOOL_TASKS, combine, notify, project_failed
    from celeriac import chord

    if not connection.in_atomic_block:
        raise RuntimeError("dispatch() must run inside transaction.atomic()")
    attempt = project.attempts + 1
    parts = model_parts(project.line_count)
    ids = {key: str(uuid.uuid4()) for key in (*TOOL_KEYS, "combine") if key != "model"}
    model_ids = [str(uuid.uuid4()) for _ in range(parts)]
    errback = project_failed.s(project.pk, attempt)
    header = [
        TOOL_TASKS[key].s(project.pk).set(task_id=ids[key], link_error=[errback])
        for key in TOOL_KEYS
        if key != "model"
    ] + [
        TOOL_TASKS["model"].s(project.pk, part, parts).set(task_id=task_id, link_error=[errback])
        for part, task_id in enumerate(model_ids)
    ]
    body = combine.s(project.pk, attempt).set(
        task_id=ids["combine"], link=[notify.si(project.pk)], link_error=[errback]
    )
    chord(header)(body)
    project.status = Project.Status.PENDING
    project.attempts = attempt
    project.task_ids = {**ids, "model": model_ids}
    project.failure_reason = ""
    project.result = None
    project.dispatched_at = timezone.now()
    project.finished_at = None
    project.save()
    return project


def due_projects() -> Q:
    """Unassigned projects, and failed ones with attempts left whose last try is old enough."""
    retry_before = timezone.now() - dt.timedelta(seconds=settings.ANALYSIS_RETRY_AFTER)
    return Q(status=Project.Status.UNASSIGNED) | Q(
        status=Project.Status.FAILURE,
        attempts__lt=settings.ANALYSIS_MAX_ATTEMPTS,
        updated_at__lt=retry_before,
    )


def redispatch_due(limit: int = 50) -> list[int]:
    """The checker: dispatch due projects (skipping rows another checker holds)."""
    done = []
    with transaction.atomic():
        rows = Project.objects.select_for_update(skip_locked=True).filter(due_projects())
        for project in rows.order_by("updated_at")[:limit]:
            dispatch(project)
            done.append(project.pk)
    return done
