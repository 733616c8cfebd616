"""``inspect stats``' counts: a task is counted once, when it ends or is retried."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celeriac import Celery
from celeriac.worker.consumer import started_mark
from celeriac.worker.executor import Outcome, untouched
from celeriac.worker.worker import Worker


def test_marks_and_releases_are_not_counted_as_processed() -> None:
    app = Celery("t", broker="postgresql://unused", celeriac_schema="unused")
    worker = Worker(app, hostname="w@test", pool="solo")
    added: list[Outcome] = []
    prefetch: Any = SimpleNamespace(observe=lambda runtime, name: None)
    worker.consumer = SimpleNamespace(prefetch=prefetch)  # type: ignore[assignment]
    worker.completer = SimpleNamespace(add=lambda *o: added.extend(o))  # type: ignore[assignment]
    job: Any = SimpleNamespace(id=1, attempt=1, task_id="t1", task_name="add", started=False)
    job.eta = None
    ended = Outcome(1, 1, "t1", "add", "finish", "SUCCESS", runtime=0.001)
    retried = Outcome(2, 1, "t2", "add", "requeue", "RETRY", retry=True, runtime=0.001)
    worker.on_outcomes([started_mark(job), ended])
    worker.on_outcomes([retried, untouched(job, None)])
    assert worker.processed == 2 and worker.totals == {"add": 2}
    assert len(added) == 4  # every outcome is still written
