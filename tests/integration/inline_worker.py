"""Run queued jobs in the test process through the worker's own steps (claim → execute →
commit), so client-side behaviour is tested against real rows without a subprocess."""

from __future__ import annotations

from typing import Any

from celeriac.message import Job
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

HOSTNAME = "inline@test"


def claim(app: Any, queue: str = "celery", limit: int = 100) -> list[Job]:
    with app.database.connection() as conn:
        jobs: list[Job] = app.broker.claim(conn, queue, limit, worker_id=1)
    return jobs


def run_jobs(app: Any, queue: str = "celery", limit: int = 100) -> int:
    """Claim due jobs of ``queue``, run them here, record the outcomes; return how many."""
    jobs = claim(app, queue, limit)
    outcomes = [Execution(app, job, HOSTNAME).run() for job in jobs]
    if outcomes:
        with app.database.connection() as conn:
            app.broker.commit(conn, to_batch(outcomes), HOSTNAME, 3600.0)
    return len(jobs)


def job_rows(app: Any) -> list[dict[str, Any]]:
    """Every row of the jobs table, as dicts."""
    app.ensure_schema()
    with app.database.connection() as conn:
        cursor = conn.execute(f'SELECT * FROM "{app.database.schema}".jobs ORDER BY id')
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
