"""The upload view: one transaction for the project and its chord; bad uploads change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from analysis.models import Project
from tests.django.conftest import DEMO, jobs

pytestmark = pytest.mark.django_db(transaction=True)
SAMPLE = DEMO / "analysis/static/analysis/reviews.txt"


def upload(client: Client, name: str, data: bytes, column: str = "") -> Any:
    return client.post("/", {"file": SimpleUploadedFile(name, data), "column": column})


def media_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_creates_project_and_publishes_its_chord(client: Client, settings: Any) -> None:
    response = upload(client, "reviews.txt", SAMPLE.read_bytes())
    project = Project.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/"
    assert project.status == Project.Status.PENDING
    assert project.attempts == 1
    assert project.line_count == 300
    assert set(project.task_ids) == {"vader", "model", "emotions", "phrases", "combine"}
    # the four tools wait as jobs, committed with the project (the body waits for them)
    queued = {name for _, name in jobs()}
    assert {"analysis.vader", "analysis.model", "analysis.emotions", "analysis.phrases"} <= queued
    assert len(media_files(settings)) == 1


def test_csv_upload_uses_the_chosen_column(client: Client) -> None:
    data = b"id,review\n1,I love it\n2,I hate it\n"
    assert upload(client, "r.csv", data, "review").status_code == 302
    project = Project.objects.get()
    assert (project.text_column, project.line_count) == ("review", 2)


@pytest.mark.parametrize(
    ("name", "data", "column", "message"),
    [
        ("empty.txt", b"", "", "The submitted file is empty."),
        ("blank.txt", b"\n \n", "", "is empty"),
        ("bin.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "", "looks like a binary file"),
        ("latin.txt", "café".encode("latin-1"), "", "is not UTF-8 text"),
        ("r.csv", b"id,review\n1,hi\n", "text", "has no column &#x27;text&#x27;"),
    ],
)
def test_bad_upload_shows_message_and_creates_nothing(
    client: Client, settings: Any, name: str, data: bytes, column: str, message: str
) -> None:
    response = upload(client, name, data, column)
    assert response.status_code in (400, 200)
    assert message in response.content.decode()
    assert Project.objects.count() == 0
    assert jobs() == []
    assert media_files(settings) == []


def test_over_the_size_limit(client: Client, settings: Any) -> None:
    settings.ANALYSIS_MAX_UPLOAD_BYTES = 100
    response = upload(client, "big.txt", b"word " * 100)
    assert response.status_code == 400
    assert "over the size limit of 0.0 MB" in response.content.decode()
    assert Project.objects.count() == 0 and jobs() == []


def test_failed_publish_rolls_back_project_and_file(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis import dispatch

    def broken(project: Project) -> None:
        raise RuntimeError("broker down")

    monkeypatch.setattr("analysis.views.dispatch", broken)
    client.raise_request_exception = True
    with pytest.raises(RuntimeError, match="broker down"):
        upload(client, "reviews.txt", SAMPLE.read_bytes())
    assert dispatch  # the real one is untouched
    assert Project.objects.count() == 0
    assert media_files(settings) == []


def test_project_pages_belong_to_their_session(client: Client) -> None:
    upload(client, "reviews.txt", SAMPLE.read_bytes())
    project = Project.objects.get()
    own = client.get(f"/projects/{project.pk}/status.json").json()
    assert own["status"] == "pending"
    assert [t["key"] for t in own["tools"]] == ["vader", "model", "emotions", "phrases"]
    assert all(t["state"] == "PENDING" and t["licence"] for t in own["tools"])
    assert client.get(f"/projects/{project.pk}/").status_code == 200
    assert Client().get(f"/projects/{project.pk}/status.json").status_code == 404


def test_sequential_run_is_published(client: Client) -> None:
    upload(client, "reviews.txt", SAMPLE.read_bytes())
    project = Project.objects.get()
    task_id = client.post(f"/projects/{project.pk}/sequential/").json()["task_id"]
    assert (task_id, "analysis.sequential") in jobs()
    project.refresh_from_db()
    assert project.sequential == {"task_id": task_id}
