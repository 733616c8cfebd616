"""The checker re-dispatches unassigned projects and failed ones with attempts left, bounded."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from analysis.dispatch import redispatch_due
from analysis.models import Project
from tests.django.conftest import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def make(status: str, attempts: int = 0, age: float = 0) -> Project:
    project = Project(name="x.txt", owner_session="s", status=status, attempts=attempts)
    project.file.save("x.txt", ContentFile(b"good\nbad\n"), save=False)
    project.save()
    Project.objects.filter(pk=project.pk).update(
        updated_at=timezone.now() - dt.timedelta(seconds=age)
    )
    return project


def test_unassigned_and_due_failures_are_dispatched(settings: Any) -> None:
    settings.ANALYSIS_RETRY_AFTER = 60
    unassigned = make("unassigned")
    due = make("failure", attempts=1, age=120)
    too_recent = make("failure", attempts=1, age=5)
    exhausted = make("failure", attempts=settings.ANALYSIS_MAX_ATTEMPTS, age=3600)
    done = make("success", attempts=1, age=3600)
    assert sorted(redispatch_due()) == sorted([unassigned.pk, due.pk])
    states = {p.pk: (p.status, p.attempts) for p in Project.objects.all()}
    assert states[unassigned.pk] == ("pending", 1)
    assert states[due.pk] == ("pending", 2)
    assert states[too_recent.pk] == ("failure", 1)
    assert states[exhausted.pk] == ("failure", settings.ANALYSIS_MAX_ATTEMPTS)
    assert states[done.pk] == ("success", 1)
    ids = {p.pk: p.task_ids for p in Project.objects.filter(pk__in=[unassigned.pk, due.pk])}
    queued = {task_id for task_id, _ in jobs()}
    for task_ids in ids.values():
        assert task_ids["vader"] in queued and set(task_ids["model"]) <= queued
    assert redispatch_due() == []  # nothing left: no loop


def test_management_command(capsys: pytest.CaptureFixture[str]) -> None:
    project = make("unassigned")
    call_command("check_projects")
    assert f"dispatched 1 project(s): [{project.pk}]" in capsys.readouterr().out


def test_stale_errback_of_an_old_attempt_changes_nothing() -> None:
    from analysis.tasks import project_failed

    project = make("pending", attempts=2)
    project_failed.run("no-such-task", project.pk, 1)
    project.refresh_from_db()
    assert project.status == "pending"
