"""--autoscale MAX,MIN: the prefork pool grows with waiting jobs and shrinks when idle."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_autoscale_grows_and_shrinks(
    proj_app: Any, start_worker: Any, worker_env: dict[str, str]
) -> None:
    worker_env["AUTOSCALE_KEEPALIVE"] = "1"
    worker = start_worker("--autoscale", "3,1", "-n", "scaler@%h")
    results = [proj_app.tasks["proj.sleep_then"].delay(1.5, i) for i in range(6)]
    grown = worker.wait_for_line("autoscale: growing the pool")
    assert [r.get(timeout=30) for r in results] == list(range(6))
    stats = proj_app.control.inspect().stats()
    (node,) = stats
    assert stats[node]["pool"]["max-concurrency"] > 1
    worker.wait_for_line("autoscale: shrinking the pool to", start=grown)
    reply = proj_app.control.autoscale(2, 1, reply=True)
    assert reply == [{node: {"ok": "autoscale now max=2 min=1"}}]
    shrunk = proj_app.control.pool_shrink(5, reply=True)
    assert "pool will shrink" in shrunk[0][node]["ok"]
    assert proj_app.control.inspect().stats()[node]["pool"]["max-concurrency"] == 1
    assert proj_app.tasks["proj.add"].delay(1, 1).get(timeout=15) == 2
