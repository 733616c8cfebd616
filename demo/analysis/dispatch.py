"""Publishing a project's work: a chord of the four tools, in the caller's transaction.

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


def dispatch(project: Project) -> Project:
    """Publish the chord for ``project`` (a new attempt) and mark it pending."""
    from analysis.tasks import TOOL_TASKS, combine, notify, project_failed
    from celeriac import chord

    if not connection.in_atomic_block:
        raise RuntimeError("dispatch() must run inside transaction.atomic()")
    attempt = project.attempts + 1
    ids = {key: str(uuid.uuid4()) for key in (*TOOL_KEYS, "combine")}
    errback = project_failed.s(project.pk, attempt)
    header = [
        TOOL_TASKS[key].s(project.pk).set(task_id=ids[key], link_error=[errback])
        for key in TOOL_KEYS
    ]
    body = combine.s(project.pk, attempt).set(
        task_id=ids["combine"], link=[notify.si(project.pk)], link_error=[errback]
    )
    chord(header)(body)
    project.status = Project.Status.PENDING
    project.attempts = attempt
    project.task_ids = ids
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
