"""Tasks of the recovery benchmark (``bench/recovery.py``); workers load it with -A."""

from __future__ import annotations

import os
import time

from celeriac import Celery

app = Celery("recovery_bench", broker=os.environ.get("CELERIAC_BROKER_URL"))


def _hold(marker: str, gate: str) -> int:
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    while not os.path.exists(gate):
        time.sleep(0.01)
    return os.getpid()


@app.task
def early(marker: str, gate: str) -> int:
    """Acknowledged as it starts (Celery's default)."""
    return _hold(marker, gate)


@app.task(acks_late=True, reject_on_worker_lost=True)
def late(marker: str, gate: str) -> int:
    """Acknowledged after it returns; queued again when its process dies."""
    return _hold(marker, gate)
