"""The e2e app with a handler on every Celery signal, logging to $SIGNAL_LOG (JSON lines)."""

from __future__ import annotations

import json
import os
from typing import Any

from proj import app  # type: ignore[import-not-found]

from celeriac import signals

NAMES = [
    "before_task_publish", "after_task_publish", "task_received", "task_prerun",
    "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
    "task_internal_error", "worker_init", "worker_process_init", "worker_ready",
    "worker_shutting_down", "worker_shutdown", "beat_init", "beat_embedded_init",
    "celeryd_init", "celeryd_after_setup", "import_modules",
]  # fmt: skip


def _record(name: str) -> Any:
    def handler(sender: Any = None, **kwargs: Any) -> None:
        kwargs.pop("signal", None)
        line = {"signal": name, "sender": type(sender).__name__, "kwargs": sorted(kwargs)}
        if name in ("task_prerun", "task_postrun", "task_success", "task_failure"):
            line["task"] = getattr(sender, "name", None)
        with open(os.environ["SIGNAL_LOG"], "a") as handle:
            handle.write(json.dumps(line) + "\n")

    return handler


HANDLERS = {name: _record(name) for name in NAMES}
for _name, _handler in HANDLERS.items():
    getattr(signals, _name).connect(_handler, weak=False)
app.on_after_configure.connect(_record("on_after_configure"), weak=False)
app.on_after_finalize.connect(_record("on_after_finalize"), weak=False)
