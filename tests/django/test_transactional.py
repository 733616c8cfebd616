"""Transactional enqueue on Django's connection: a task exists only if its transaction commits."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from tests.django.conftest import jobs

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def test_rolled_back_transaction_leaves_no_task(celery_app: Any) -> None:
    from analysis.tasks import notify

    with pytest.raises(Boom), transaction.atomic():
        result = notify.delay(1)
        # written on Django's connection, inside the open transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM celeriac.jobs WHERE task_id = %s", [result.id])
            assert cursor.fetchone()[0] == 1
        assert jobs([result.id]) == []  # other sessions cannot see it yet
        raise Boom
    assert jobs([result.id]) == []


def test_committed_transaction_publishes_at_commit(celery_app: Any) -> None:
    from analysis.tasks import notify

    with transaction.atomic():
        result = notify.delay(7)
        assert jobs([result.id]) == []
    assert jobs([result.id]) == [(result.id, "analysis.notify")]


def test_autocommit_publishes_immediately(celery_app: Any) -> None:
    from analysis.tasks import notify

    assert not connection.in_atomic_block
    result = notify.delay(3)
    assert jobs([result.id]) == [(result.id, "analysis.notify")]


def test_delay_on_commit_returns_async_result_and_follows_the_transaction(
    celery_app: Any,
) -> None:
    from analysis.tasks import notify

    with pytest.raises(Boom), transaction.atomic():
        dropped = notify.delay_on_commit(1)
        raise Boom
    with transaction.atomic():
        kept = notify.apply_async_on_commit((2,), countdown=60)
    assert dropped.id and kept.id
    assert jobs([dropped.id, kept.id]) == [(kept.id, "analysis.notify")]


def test_nested_savepoint_rollback_drops_only_its_task(celery_app: Any) -> None:
    from analysis.tasks import notify

    with transaction.atomic():
        outer = notify.delay(1)
        with pytest.raises(Boom), transaction.atomic():
            inner = notify.delay(2)
            raise Boom
    assert jobs([outer.id, inner.id]) == [(outer.id, "analysis.notify")]


def test_migrate_created_celeriac_schema_from_its_own_sql() -> None:
    from celeriac.db.migrate import migrations

    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM celeriac.schema_version ORDER BY version")
        versions = [row[0] for row in cursor.fetchall()]
    assert versions == [m.version for m in migrations()]


def test_rolled_back_dispatch_leaves_no_job_and_no_chord(celery_app: Any) -> None:
    from django.core.files.base import ContentFile

    from analysis.dispatch import dispatch
    from analysis.models import Project

    with pytest.raises(Boom), transaction.atomic():
        project = Project(name="a.txt", owner_session="s")
        project.file.save("a.txt", ContentFile(b"hello\n"), save=False)
        project.save()
        dispatch(project)
        with connection.cursor() as cursor:  # the chord's join row, in this transaction
            cursor.execute("SELECT count(*) FROM celeriac.chords")
            assert cursor.fetchone()[0] == 1
        raise Boom
    assert Project.objects.count() == 0
    assert jobs() == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM celeriac.chords")
        assert cursor.fetchone()[0] == 0


def test_delay_on_commit_with_the_broker_elsewhere_defers_to_on_commit(
    celery_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.tasks import notify

    # as if the broker were another database: no transaction can be shared
    monkeypatch.setattr(
        "celeriac.contrib.django.transaction.same_database", lambda url, settings: False
    )
    with pytest.raises(Boom), transaction.atomic():
        dropped = notify.delay_on_commit(1)
        raise Boom
    with transaction.atomic():
        kept = notify.delay_on_commit(2)
        assert jobs([kept.id]) == []  # deferred to on_commit, like Celery
    assert jobs([dropped.id, kept.id]) == [(kept.id, "analysis.notify")]
