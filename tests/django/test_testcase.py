"""Under Django's TestCase (each test one transaction, rolled back) tasks are written in
the test's transaction: visible to the test's own connection, never to a worker, and gone
after the test."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test import TestCase

from tests.django.conftest import jobs


class TaskInTestCase(TestCase):
    def test_task_is_written_in_the_test_transaction(self) -> None:
        from analysis.tasks import notify

        result: Any = notify.delay(5)
        with connection.cursor() as cursor:
            cursor.execute("SELECT task_name FROM celeriac.jobs WHERE task_id = %s", [result.id])
            assert cursor.fetchone() == ("analysis.notify",)
        assert jobs([result.id]) == []
