"""The chord's outcomes with a real ``celeriac -A demo_site worker`` (prefork) subprocess:
success → combined result + notification e-mail (``link``); a hanging tool → its time
limit → the project fails with a readable reason (``link_error``). Then the admin pages
show those task results, and its actions retry and revoke."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction

from analysis.dispatch import dispatch
from analysis.models import Project
from analysis.status import project_status
from celeriac.contrib.django import database_url
from celeriac.contrib.django.models import TaskResult
from tests.django.conftest import DEMO, jobs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def var(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path


@pytest.fixture
def start_worker(var: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo_site.settings",
            "PYTHONPATH": str(DEMO),
            "DEMO_DATABASE_URL": database_url(connection.settings_dict),
            "DEMO_VAR": str(var),
            "OPENBLAS_NUM_THREADS": "1",
            **env,
        }
        environment.pop("CELERIAC_BROKER_URL", None)
        name = f"t{len(started)}-{os.getpid()}@%h"
        proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "demo_site", "worker", "-c", "2", "-n", name],
            cwd=DEMO,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(30)


def create(name: str, text: bytes) -> Project:
    with transaction.atomic():
        project = Project(name=name, owner_session="s", line_count=text.count(b"\n"))
        project.file.save(name, ContentFile(text), save=False)
        project.save()
        dispatch(project)
    return project


def settled(project: Project, timeout: float = 120) -> Project:
    """Wait until the project leaves pending (the page's own polling, in a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        project.refresh_from_db()
        if project.status != Project.Status.PENDING:
            return project
        time.sleep(0.3)
    raise AssertionError(f"project still pending after {timeout} s: {project.task_ids}")


def test_success_combines_and_sends_the_notification(
    start_worker: Callable[..., Any], var: Path, admin_client: Any, settings: Any, monkeypatch: Any
) -> None:
    # the model tool as three chord members, one line each: merged back in line order
    settings.ANALYSIS_MODEL_PARTS = 3
    monkeypatch.setattr("analysis.dispatch.MIN_PART_LINES", 1)
    worker = start_worker()
    project = settled(create("small.txt", b"I love it!\nThis is terrible.\nIt arrived.\n"))
    assert project.status == "success", project.failure_reason
    assert len(project.task_ids["model"]) == 3
    assert project.result["lines"] == 3
    assert project.result["most_positive"][0]["text"] == "I love it!"
    assert project.result["most_negative"][0]["text"] == "This is terrible."
    assert [t["tool"] for t in project.result["tasks"]].count("model") == 3
    card = next(t for t in project_status(project)["tools"] if t["key"] == "model")
    assert (card["state"], card["percent"], card["parts_done"]) == ("SUCCESS", 100, 3)
    deadline = time.monotonic() + 30
    while not list((var / "mail").glob("*.log")) and time.monotonic() < deadline:
        time.sleep(0.2)
    mail = next((var / "mail").glob("*.log")).read_text()
    assert "Analysis ready: small.txt" in mail
    worker.terminate()  # the admin's retry must stay queued for the check below
    worker.wait(30)
    check_admin(admin_client, project)


def check_admin(client: Any, project: Project) -> None:
    vader_id = project.task_ids["vader"]
    url = "/admin/celeriac/taskresult/"
    page = client.get(f"{url}?status__exact=SUCCESS&name__exact=analysis.vader")
    assert page.status_code == 200 and vader_id in page.content.decode()
    found = client.get(f"{url}?q={vader_id}").content.decode()
    assert "1 task result" in found
    detail = client.get(f"{url}{vader_id}/change/").content.decode()
    assert f"[\n  {project.pk}\n]" in detail  # args
    assert "scores" in detail and "runtime" in detail
    retried = client.post(url, {"action": "retry_tasks", "_selected_action": [vader_id]})
    assert retried.status_code == 302
    assert [name for _, name in jobs()] == ["analysis.vader"]
    new_id = jobs()[0][0]
    revoke = {"action": "revoke_tasks", "_selected_action": [vader_id]}
    assert client.post(url, revoke).status_code == 302
    assert TaskResult.objects.get(task_id=vader_id).status == "SUCCESS"  # done stays done
    assert new_id != vader_id


def test_a_hanging_tool_hits_its_time_limit_and_fails_the_project(
    start_worker: Callable[..., Any],
) -> None:
    start_worker(DEMO_TIME_LIMIT="2", DEMO_FAULT="emotions:hang")
    project = settled(create("hang.txt", b"one\ntwo\n"))
    assert project.status == "failure"
    assert project.failure_reason == "Emotions did not finish within its time limit (2 s)."
    assert TaskResult.objects.get(task_id=project.task_ids["emotions"]).status == "FAILURE"


def test_a_failing_model_part_fails_the_project_with_the_tool_named(
    start_worker: Callable[..., Any], settings: Any, monkeypatch: Any
) -> None:
    settings.ANALYSIS_MODEL_PARTS = 2
    monkeypatch.setattr("analysis.dispatch.MIN_PART_LINES", 1)
    start_worker(DEMO_FAULT="model:error")
    project = settled(create("fails.txt", b"one\ntwo\n"))
    assert project.status == "failure"
    assert project.failure_reason == (
        "Sentiment, model-based failed: RuntimeError: "
        "injected failure in the model tool (DEMO_FAULT)"
    )
    card = next(t for t in project_status(project)["tools"] if t["key"] == "model")
    assert card["state"] == "FAILURE" and card["parts"] == 2
