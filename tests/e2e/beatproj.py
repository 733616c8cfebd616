"""The e2e app with a schedule: ``celeriac -A beatproj beat`` (tasks from proj)."""

from __future__ import annotations

from typing import Any

from proj import app  # type: ignore[import-not-found]

from celeriac.schedules import crontab

app.conf["beat_max_loop_interval"] = 1
app.conf["beat_schedule"] = {
    "add-every-second": {"task": "proj.add", "schedule": 1.0, "args": (1, 1)},
}


@app.on_after_configure.connect
def setup_periodic_tasks(sender: Any, **kwargs: Any) -> None:
    sender.add_periodic_task(crontab(minute="*/30"), sender.signature("proj.add", (0, 0)), name="c")
