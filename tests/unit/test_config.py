"""Settings: Celery's names, config_from_object with a namespace, env vars, URLs."""

from __future__ import annotations

import datetime as dt
import sys
import types
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.config import mask_url, normalize_url
from celeriac.exceptions import ImproperlyConfigured


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CELERIAC_BROKER_URL", "CELERIAC_RESULT_BACKEND", "CELERIAC_SCHEMA"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("fake_settings")
    module.CELERY_BROKER_URL = "db+postgresql://u:secret@db/app"  # type: ignore[attr-defined]
    module.CELERY_TASK_ALWAYS_EAGER = True  # type: ignore[attr-defined]
    module.CELERY_RESULT_EXPIRES = dt.timedelta(hours=1)  # type: ignore[attr-defined]
    module.DATABASES = {"default": {}}  # type: ignore[attr-defined]
    module.task_acks_late = True  # type: ignore[attr-defined]
    sys.modules["fake_settings"] = module
    yield module
    del sys.modules["fake_settings"]


def test_defaults_are_celerys() -> None:
    conf = Celery("x").conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ("json",)
    assert conf.result_expires == dt.timedelta(days=1)
    assert conf.task_default_queue == "celery"
    assert conf.task_acks_late is False
    assert conf.worker_prefetch_multiplier == 4
    assert conf.celeriac_schema == "celeriac"


def test_constructor_keywords_are_settings() -> None:
    app = Celery("x", broker="postgresql://h/db", backend="postgresql://h/r", task_acks_late=True)
    assert app.conf.broker_url == "postgresql://h/db"
    assert app.conf.result_backend == "postgresql://h/r"
    assert app.conf.task_acks_late is True
    with pytest.raises(AttributeError, match="no setting named 'nonsense'"):
        _ = app.conf.nonsense


def test_config_from_object_with_namespace(settings_module: types.ModuleType) -> None:
    app = Celery("x")
    app.config_from_object("fake_settings", namespace="CELERY")
    assert app.conf.broker_url == "db+postgresql://u:secret@db/app"
    assert app.conf.task_always_eager is True
    assert app.conf.result_expires == dt.timedelta(hours=1)
    assert "databases" not in app.conf and "task_acks_late" not in app.conf
    assert app.conf.broker() == "postgresql://u:secret@db/app"


def test_config_from_object_without_namespace_reads_lowercase_names(
    settings_module: types.ModuleType,
) -> None:
    app = Celery("x")
    app.config_from_object(settings_module)
    assert app.conf.task_acks_late is True
    assert "CELERY_BROKER_URL" not in app.conf and app.conf.broker_url is None


def test_config_from_object_takes_classes_and_attr_paths() -> None:
    class Config:
        task_default_queue = "fast"
        _private = "ignored"

    app = Celery("x")
    app.config_from_object(Config)
    assert app.conf.task_default_queue == "fast"
    assert "_private" not in app.conf
    app.config_from_object("no.such.module", silent=True)
    with pytest.raises(ImportError):
        app.config_from_object("no.such.module")


def test_namespace_given_to_the_app_applies(settings_module: types.ModuleType) -> None:
    app = Celery("x", namespace="CELERY")
    app.config_from_object("fake_settings")
    assert app.conf.task_always_eager is True


def test_config_from_envvar(
    settings_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Celery("x")
    with pytest.raises(ImproperlyConfigured, match="CONFIG_MODULE"):
        app.config_from_envvar("CONFIG_MODULE")
    monkeypatch.setenv("CONFIG_MODULE", "fake_settings")
    app.config_from_envvar("CONFIG_MODULE")
    assert app.conf.task_acks_late is True


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "postgres://env@h/db")
    monkeypatch.setenv("CELERIAC_SCHEMA", "jobs_here")
    app = Celery("x")
    assert app.conf.broker() == "postgresql://env@h/db"
    assert app.conf.backend() == "postgresql://env@h/db"  # results follow the broker
    assert app.conf.celeriac_schema == "jobs_here"
    monkeypatch.setenv("CELERIAC_RESULT_BACKEND", "postgresql://env@h/results")
    assert app.conf.backend() == "postgresql://env@h/results"
    # an explicit setting wins over the environment
    assert Celery("y", broker="postgresql://mine@h/db").conf.broker() == "postgresql://mine@h/db"


def test_nothing_configured_means_no_url() -> None:
    assert Celery("x").conf.broker() is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("db+postgresql://u@h/db", "postgresql://u@h/db"),
        ("db+postgresql+psycopg2://u@h/db", "postgresql://u@h/db"),
        ("sqla+postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql://u@h/db"),
        ("postgresql:///db?host=/var/run/postgresql", "postgresql:///db?host=/var/run/postgresql"),
    ],
)
def test_url_normalisation(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url", ["redis://:secret@localhost:6379/0", "amqp://guest:secret@localhost//", "db+sqlite:///x"]
)
def test_other_brokers_are_refused_with_the_password_masked(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="PostgreSQL URL") as info:
        normalize_url(url)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:**@host/db"),
        ("postgresql://user:p%40ss@host:5432/db?x=1", "postgresql://user:**@host:5432/db?x=1"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        (None, ""),
    ],
)
def test_mask_url(url: str | None, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("backend", ["rpc://", "django-db"])
def test_celery_backends_meaning_the_broker_database_are_accepted(backend: str) -> None:
    app = Celery("x", broker="postgresql://h/db", backend=backend)
    assert app.conf.backend() == "postgresql://h/db"


def test_a_redis_result_backend_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="PostgreSQL URL"):
        Celery("x", broker="postgresql://h/db", backend="redis://:pw@h").conf.backend()
