"""Settings with Celery's names and defaults, read from objects, modules and the environment.

``app.conf`` is a mapping with attribute access (``app.conf.task_acks_late``), like
Celery's. ``config_from_object(obj, namespace="CELERY")`` reads ``CELERY_BROKER_URL``
as ``broker_url``. Where PostgreSQL is: ``broker_url`` (or ``Celery(broker=...)``), else
the ``CELERIAC_BROKER_URL`` environment variable, else an embedded server.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celeriac.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "broker_url": None,
    "result_backend": None,
    "broker_connection_retry": True,
    "broker_connection_max_retries": 100,
    "broker_pool_limit": 10,
    # seconds a connection attempt may take; a pool that cannot connect says why after this
    "broker_connection_timeout": 4.0,
    "celeriac_schema": "celeriac",
    # seconds a TCP peer may stay silent before its connection is taken for dead, on both
    # ends (keepalives, TCP_USER_TIMEOUT: db/pool.py); 0 leaves the kernel's defaults
    "celeriac_dead_connection_timeout": 10.0,
    # dead row versions in jobs/results after which the maintenance leader VACUUMs the
    # table itself (autovacuum may be off, or far behind a queue's churn); 0 never
    "celeriac_vacuum_threshold": 50_000,
    # a worker sends small JSON results whole in their NOTIFY, so a waiting get() needs no
    # read; any session of the database may LISTEN: off where a role must not see results
    # (docs/security.md)
    "celeriac_notify_results": True,
    "accept_content": ("json",),
    "result_accept_content": None,
    "task_serializer": "json",
    "result_serializer": "json",
    "result_expires": dt.timedelta(days=1),
    "result_extended": True,
    "task_default_queue": "celery",
    "task_routes": None,
    "task_create_missing_queues": True,
    "task_acks_late": False,
    "task_reject_on_worker_lost": None,
    "task_acks_on_failure_or_timeout": True,
    "task_track_started": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_default_rate_limit": None,
    "task_default_priority": None,
    # "persistent" (2): a publish commits durably; "transient" (1): asynchronous commit,
    # faster but a task accepted so may be lost if the server crashes (docs/guarantees.md)
    "task_default_delivery_mode": "persistent",
    "task_publish_retry": True,
    "task_publish_retry_policy": {
        "max_retries": 3,
        "interval_start": 0,
        "interval_max": 1,
        "interval_step": 0.2,
    },
    "task_max_payload_size": 10 * 1024 * 1024,
    "task_send_sent_event": False,
    "worker_send_task_events": False,
    "worker_concurrency": None,
    "worker_prefetch_multiplier": 4,
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,
    "worker_lost_wait": 10.0,
    "worker_heartbeat_interval": 2.0,
    "worker_lost_timeout": 30.0,
    "worker_poll_interval": 1.0,
    "worker_disable_rate_limits": False,
    "worker_hijack_root_logger": True,
    "worker_pool": "prefork",
    "imports": (),
    "include": (),
    "timezone": None,
    "enable_utc": True,
    "beat_schedule": {},
    "beat_max_loop_interval": 5,
}

_SETTING = re.compile(r"^[a-z][a-z0-9_]*$")
_UNSET = object()
_SAME_AS_BROKER = {"rpc", "django-db", "db", "database"}


def _default(key: str) -> Any:
    """A setting's value when it was not set (``_UNSET``: no such setting)."""
    if key == "celeriac_schema":
        return os.environ.get("CELERIAC_SCHEMA") or DEFAULTS[key]
    return DEFAULTS.get(key, _UNSET)


class Settings(dict[str, Any]):
    """Celery-style configuration: a dict with attribute access and defaults."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting named {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __missing__(self, key: str) -> Any:
        value = _default(key)
        if value is _UNSET:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # (no KeyError raised and caught for a default: tasks read their settings per job)
        value = dict.get(self, key, _UNSET)
        if value is _UNSET:
            value = _default(key)
        return default if value is _UNSET else value

    def update_from(self, source: Mapping[str, Any] | object, namespace: str | None = None) -> None:
        """Copy settings from a mapping or object; with a namespace only ``NS_NAME`` keys."""
        items = source.items() if isinstance(source, Mapping) else _object_items(source)
        prefix = f"{namespace}_" if namespace else ""
        for key, value in items:
            if prefix:
                if not key.startswith(prefix):
                    continue
                key = key[len(prefix) :].lower()
            elif not _SETTING.match(key):
                continue
            self[key] = value

    def broker(self) -> str | None:
        """The configured database URL for the broker, without Celery's ``db+`` prefixes."""
        url = self.get("broker_url") or os.environ.get("CELERIAC_BROKER_URL")
        return normalize_url(url) if url else None

    def backend(self) -> str | None:
        """The database URL for results: ``result_backend`` or else the broker's.

        Celery backends that only say "keep results somewhere sensible" (``rpc://``,
        ``django-db``) mean the broker's database here, so ported settings keep working.
        """
        url = self.get("result_backend") or os.environ.get("CELERIAC_RESULT_BACKEND")
        if url and str(url).rstrip("/:") in _SAME_AS_BROKER:
            url = None
        return normalize_url(url) if url else self.broker()


def _object_items(source: object) -> Iterable[tuple[str, Any]]:
    for key in dir(source):
        if not key.startswith("_"):
            yield key, getattr(source, key)


def load_object(path: str) -> Any:
    """Import ``'pkg.module'`` or ``'pkg.module:attr'`` / ``'pkg.module.attr'``."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if attr or "." not in module_name:
            raise
        module_name, _, attr = module_name.rpartition(".")
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


_SCHEMES = {"postgresql", "postgres"}


def normalize_url(url: str) -> str:
    """Accept ``postgresql://``, ``postgres://`` and Celery's ``db+``/``sqla+`` prefixes."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.split("+", 1)[-1] if scheme.startswith(("db+", "sqla+")) else scheme
    scheme = scheme.split("+", 1)[0]  # postgresql+psycopg:// (SQLAlchemy driver suffix)
    if not sep or scheme not in _SCHEMES:
        raise ImproperlyConfigured(
            f"celeriac needs a PostgreSQL URL such as postgresql://user@host:5432/dbname, "
            f"got {mask_url(url)!r}"
        )
    return f"postgresql://{rest}"


def mask_url(url: str | None) -> str:
    """Hide the password of a URL (``postgresql://user:**@host/db``, ``?password=**``)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return redact(url)
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":**"
    return redact(urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}")))


_URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^\s/]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in text that may hold database URLs or libpq keyword strings."""
    text = _URL_PASSWORD.sub(r"\1**@", text)
    return _KEYWORD_PASSWORD.sub(r"\1**", text)


def as_seconds(value: Any) -> float | None:
    """Convert a number or timedelta to seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


__all__ = [
    "DEFAULTS",
    "Settings",
    "as_seconds",
    "load_object",
    "mask_url",
    "normalize_url",
    "redact",
]
