"""Create celeriac's schema by running celeriac's own SQL migrations (no copied DDL)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def forward(apps: Any, schema_editor: Any) -> None:
    from celeriac.contrib.django.schema import ensure_schema

    ensure_schema(schema_editor.connection.alias)


def backward(apps: Any, schema_editor: Any) -> None:
    from celeriac.contrib.django.schema import drop_schema

    drop_schema(schema_editor.connection.alias)


class Migration(migrations.Migration):
    # celeriac's migrator runs each SQL migration in its own transaction
    atomic = False
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(forward, backward)]
