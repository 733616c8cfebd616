"""Tasks of the chord benchmark (``bench/chords.py``); workers load it with -A."""

from __future__ import annotations

import os

from celeriac import Celery

app = Celery("chord_bench", broker=os.environ.get("CELERIAC_BROKER_URL"))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)
