"""An idle worker is woken by NOTIFY for every job, not only the first of an interval."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_idle_worker_wakes_for_each_job(proj_app: Any, start_worker: Any) -> None:
    start_worker("-c", "1", "-P", "solo")
    add = proj_app.tasks["proj.add"]
    assert add.delay(0, 0).get(timeout=30) == 0
    trips = []
    for i in range(10):
        began = time.monotonic()
        assert add.delay(i, 1).get(timeout=30) == i + 1
        trips.append(time.monotonic() - began)
    # woken only by the 1 s poll, the median is ~1 s; woken by NOTIFY it is milliseconds
    assert statistics.median(trips) < 0.5, trips
