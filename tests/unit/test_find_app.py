"""``-A proj`` resolves as Celery's find_app does."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from celeriac import Celery
from celeriac.cli.base import find_app

APP = "from celeriac import Celery\n{name} = Celery({main!r})\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Write modules under a unique package name; return a maker of module files."""
    monkeypatch.syspath_prepend(str(tmp_path))
    package = f"proj_{uuid.uuid4().hex[:8]}"

    def write(relative: str, text: str) -> str:
        path = tmp_path / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == tmp_path:
                break
            (parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
        return package

    yield write
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def test_module_attribute_app(project: Callable[..., str]) -> None:
    package = project("__init__.py", APP.format(name="app", main="a"))
    found = find_app(package)
    assert isinstance(found, Celery) and found.main == "a"


def test_module_attribute_celery(project: Callable[..., str]) -> None:
    package = project("__init__.py", APP.format(name="celery", main="c"))
    assert find_app(package).main == "c"


def test_app_wins_over_celery(project: Callable[..., str]) -> None:
    package = project("__init__.py", APP.format(name="celery", main="c") + "app = Celery('a')\n")
    assert find_app(package).main == "a"


def test_explicit_attribute(project: Callable[..., str]) -> None:
    package = project("tasks.py", APP.format(name="worker_app", main="w"))
    assert find_app(f"{package}.tasks:worker_app").main == "w"
    assert find_app(f"{package}.tasks.worker_app").main == "w"


def test_explicit_factory_is_called(project: Callable[..., str]) -> None:
    package = project(
        "factory.py",
        "from celeriac import Celery\ndef create_app():\n    return Celery('made')\n",
    )
    assert find_app(f"{package}.factory:create_app").main == "made"


def test_celery_submodule_of_a_package(project: Callable[..., str]) -> None:
    # the Django layout: proj/celery.py defines app; proj/__init__.py re-exports it
    package = project("celery.py", APP.format(name="app", main="django-style"))
    assert find_app(package).main == "django-style"


def test_any_instance_in_the_module(project: Callable[..., str]) -> None:
    package = project("tasks.py", APP.format(name="whatever", main="any"))
    assert find_app(f"{package}.tasks").main == "any"


def test_missing_module_is_a_usage_error(project: Callable[..., str]) -> None:
    with pytest.raises(click.UsageError, match="cannot import"):
        find_app("no_such_module_here")
    package = project("tasks.py", "x = 1\n")
    with pytest.raises(click.UsageError, match="cannot import"):
        find_app(f"{package}.missing.app")
    with pytest.raises(click.UsageError, match="no celeriac app found"):
        find_app(f"{package}.tasks")
    with pytest.raises(click.UsageError, match="has no attribute 'nope'"):
        find_app(f"{package}.tasks:nope")


def test_import_errors_inside_the_project_are_not_hidden(project: Callable[..., str]) -> None:
    package = project("celery.py", "import some_dependency_that_is_missing\n")
    with pytest.raises(ModuleNotFoundError, match="some_dependency_that_is_missing"):
        find_app(package)
