"""The app: shared_task in every app, autodiscover_tasks, include, task registry."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, shared_task
from celeriac.exceptions import NotRegistered


@shared_task
def shared_add(x: int, y: int) -> int:
    return x + y


@shared_task(name="shared.named", bind=True)
def shared_named(self: object) -> str:
    return type(self).__name__


def test_shared_task_is_registered_in_apps_made_before_and_after() -> None:
    first = Celery("first")
    second = Celery("second")
    name = f"{__name__}.shared_add"
    assert name in first.tasks and name in second.tasks
    assert first.tasks[name] is not second.tasks[name]
    assert first.tasks[name].app is first and second.tasks[name].app is second
    assert "shared.named" in Celery("third").tasks


def test_shared_task_proxy_follows_the_current_app() -> None:
    one = Celery("one")
    assert shared_add.app is one
    two = Celery("two")
    assert shared_add.app is two
    assert shared_add(2, 3) == 5
    assert shared_add.name == f"{__name__}.shared_add"


def test_unknown_task_name_raises_not_registered_naming_it() -> None:
    app = Celery("x")
    with pytest.raises(NotRegistered, match=r"'no\.such\.task'"):
        app.tasks["no.such.task"]
    with pytest.raises(KeyError):  # as Celery's NotRegistered
        app.tasks["no.such.task"]


def test_task_defined_in_main_uses_the_app_name() -> None:
    app = Celery("myapp")

    def fun() -> None:
        return None

    fun.__module__ = "__main__"
    assert app.task(fun).name == "myapp.fun"


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.syspath_prepend(str(tmp_path))
    names = [f"pkg_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in names[:2]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "tasks.py").write_text(
            "from celeriac import shared_task\n\n@shared_task\ndef hello():\n    return 1\n"
        )
    (tmp_path / names[2]).mkdir()  # a package without a tasks module
    (tmp_path / names[2] / "__init__.py").write_text("")
    yield names
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


def test_autodiscover_tasks_is_lazy_then_imports_each_tasks_module(packages: list[str]) -> None:
    app = Celery("auto")
    app.autodiscover_tasks(packages)
    assert f"{packages[0]}.tasks.hello" not in app.tasks  # lazy, as in Celery
    app.import_default_modules()  # what the worker does at start-up
    assert f"{packages[0]}.tasks.hello" in app.tasks
    assert f"{packages[1]}.tasks.hello" in app.tasks


def test_autodiscover_force_and_callable(packages: list[str]) -> None:
    app = Celery("auto2")
    app.autodiscover_tasks(lambda: packages[:1], force=True)
    assert f"{packages[0]}.tasks.hello" in app.tasks


def test_include_is_imported_by_import_default_modules(packages: list[str]) -> None:
    app = Celery("inc", include=[f"{packages[1]}.tasks"])
    app.import_default_modules()
    assert f"{packages[1]}.tasks.hello" in app.tasks
