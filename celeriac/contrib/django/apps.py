"""The Django app ``celeriac.contrib.django`` (label ``celeriac``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CeleriacConfig(AppConfig):
    """Registers the migrations and the task-result admin."""

    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "celeriac"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(upgrade_schema, sender=self)


def upgrade_schema(using: str = "default", **kwargs: Any) -> None:
    """After every ``migrate``: apply celeriac SQL migrations newer than the Django ones."""
    from celeriac.contrib.django.schema import ensure_schema

    ensure_schema(using)
