"""The app of ``bench/timeline.py``: one task returning when it started, and (with
``TIMELINE_TRACE`` set, in the worker) timestamps at the worker's hops, written to
``<TIMELINE_TRACE>.<pid>.json`` when the worker exits.

The trace wraps three worker methods from the outside (the pool reader's receive, the
completer's add and its database write); it changes nothing they do.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from typing import Any

from bench.apps.celeriac_app import make_app

app = make_app(
    os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    os.environ.get("BENCH_SCHEMA", "timeline"),
)


@app.task(name="timeline.now")
def now() -> float:
    """When the task body started (the client's clock: same machine)."""
    return time.time()


def _trace(path: str) -> None:
    from celeriac.worker import completer, prefork

    log: list[Any] = []
    receive, add, commit = (
        prefork.PreforkPool._receive_all,
        completer.Completer.add,
        completer.Completer._commit,
    )

    def traced_receive(self: Any, child: Any) -> bool:
        log.append(("recv", time.time()))
        return receive(self, child)

    def traced_add(self: Any, *outcomes: Any) -> None:
        log.extend(("add", time.time(), outcome.task_id, outcome.kind) for outcome in outcomes)
        add(self, *outcomes)

    def traced_commit(self: Any, outcomes: list[Any]) -> set[int]:
        began = time.time()
        accepted = commit(self, outcomes)
        log.append(("commit", began, time.time(), [o.task_id for o in outcomes]))
        return accepted

    prefork.PreforkPool._receive_all = traced_receive  # type: ignore[method-assign]
    completer.Completer.add = traced_add  # type: ignore[method-assign]
    completer.Completer._commit = traced_commit  # type: ignore[method-assign]

    def dump() -> None:
        if log:
            with open(f"{path}.{os.getpid()}.json", "w") as f:
                json.dump(log, f)

    atexit.register(dump)


if os.environ.get("TIMELINE_TRACE"):
    _trace(os.environ["TIMELINE_TRACE"])
