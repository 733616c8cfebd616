"""pytest-django on the real PostgreSQL: the demo site's settings, pytest-django's test
database (``test_<name>``) holding Django's tables AND celeriac's schema, so a project row
and its task messages share transactions exactly as in production.

The demo's extra packages (Django, the analysis tools) come with ``make test``; with a
plain ``.[dev]`` install these tests are skipped, except in CI where that is a failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo"
MISSING = []
for module in ("django", "pytest_django", "vaderSentiment", "yake", "nrclex", "tokenizers"):
    try:
        __import__(module)
    except ImportError:
        MISSING.append(module)
if MISSING:
    if os.environ.get("CI"):
        raise RuntimeError(f"demo test dependencies missing: {MISSING} (make test installs them)")
    collect_ignore_glob = ["test_*.py"]
else:
    sys.path.insert(0, str(DEMO))
    _saved = dict(os.environ)
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
    os.environ.setdefault(
        "DEMO_DATABASE_URL",
        os.environ.get("CELERIAC_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    # a test database of our own: runs in other worktrees / CI must not share one
    os.environ.setdefault("DEMO_TEST_DATABASE", f"test_celeriac_demo_{os.getpid()}")
    import django

    django.setup()  # pytest-django set nothing up: the settings module is named only here
    # settings are loaded now; don't leak them into other tests' worker subprocesses
    os.environ.clear()
    os.environ.update(_saved)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """After pytest-django created the test database: point celeriac at it too."""
    from django.db import connection

    from celeriac.contrib.django import database_url
    from demo_site.celery import app

    with django_db_blocker.unblock():
        app.conf["broker_url"] = database_url(connection.settings_dict)
        app.close()
        app._db = app._result_db = None
        app._broker = app._backend = None
    yield
    app.close()  # let pytest-django drop the test database


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def celery_app() -> Any:
    from demo_site.celery import app

    return app


def jobs(task_ids: list[str] | None = None) -> list[tuple[str, str]]:
    """(task_id, task_name) of waiting jobs, read on a separate connection (committed only)."""
    import psycopg
    from django.db import connection

    from celeriac.contrib.django import database_url

    with psycopg.connect(database_url(connection.settings_dict)) as conn:
        rows = conn.execute("SELECT task_id, task_name FROM celeriac.jobs ORDER BY id").fetchall()
    return [row for row in rows if task_ids is None or row[0] in task_ids]


@pytest.fixture(autouse=True)
def _empty_celeriac_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Django flushes its own tables between tests; celeriac's (unmanaged) are emptied here."""
    yield
    if "django_db_setup" not in request.fixturenames:
        return
    import psycopg
    from django.db import connection

    from celeriac.contrib.django import database_url

    with psycopg.connect(database_url(connection.settings_dict), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT format('celeriac.%I', tablename) FROM pg_tables "
            "WHERE schemaname = 'celeriac' AND tablename <> 'schema_version'"
        ).fetchall()
        if tables:
            conn.execute(f"TRUNCATE {', '.join(t[0] for t in tables)}")
