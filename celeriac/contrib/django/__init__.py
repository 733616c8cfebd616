"""Django integration: the Celery pattern with only the import changed, plus transactions.

Add ``"celeriac.contrib.django"`` to ``INSTALLED_APPS`` for the migrations (they run
celeriac's own schema SQL) and the task-result admin. ``proj/celery.py`` is Celery's::

    import os
    from celeriac import Celery

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()

When ``DJANGO_SETTINGS_MODULE`` is set, every app gets the Django fixup
(:mod:`celeriac.contrib.django.fixup`): tasks published inside ``transaction.atomic()``
are written in that transaction on Django's own connection, ``delay_on_commit`` returns
an ``AsyncResult``, and the worker sets Django up and manages its connections.
"""

from __future__ import annotations

from celeriac.contrib.django.transaction import database_url, publish_connection

__all__ = ["database_url", "publish_connection"]
