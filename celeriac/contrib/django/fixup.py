"""What ``DJANGO_SETTINGS_MODULE`` switches on for a celeriac app (Celery's Django fixup).

* Task base class :class:`~celeriac.contrib.django.task.DjangoTask`.
* Transactional publishing: ``app.publish_connection`` returns Django's connection inside
  ``atomic()`` (:mod:`celeriac.contrib.django.transaction`).
* In the worker: ``django.setup()`` before task modules are imported (so
  ``autodiscover_tasks()`` sees the installed apps); a forked child abandons — never
  closes — the Django connections it inherited, because closing would end the parent's
  sessions; and stale connections are closed around each task, as Django does around
  each request.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celeriac import signals

logger = logging.getLogger(__name__)

_inherited: list[Any] = []  # connections inherited across fork: kept, never closed


def wanted() -> bool:
    """The fixup applies when Django is configured through the environment."""
    return bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


def install(app: Any) -> None:
    """Hook ``app`` up to Django."""
    from celeriac.contrib.django.transaction import publish_connection

    app.publish_connection = lambda: publish_connection(app)
    signals.import_modules.connect(_setup_django, sender=app, weak=False)
    signals.worker_process_init.connect(_abandon_inherited, weak=False)
    signals.task_prerun.connect(_close_old_connections, weak=False)
    signals.task_postrun.connect(_close_old_connections, weak=False)


def _setup_django(sender: Any = None, **kwargs: Any) -> None:
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def _abandon_inherited(**kwargs: Any) -> None:
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited.append(connection.connection)
            connection.connection = None


def _close_old_connections(**kwargs: Any) -> None:
    from django.db import close_old_connections

    close_old_connections()


__all__ = ["install", "wanted"]
