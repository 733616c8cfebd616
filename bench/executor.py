"""What the executor's steps cost a no-op job, in CPU, with no I/O timed (issue 6).

    python -m bench.executor --jobs 20000 --rounds 5

A drained no-op job is mostly Python: the pool process runs it through the executor's
steps (decode, resolve, request context, prerun, body, classify, handlers, postrun) and
the worker turns the outcomes into one write. This times those two parts alone, on real
jobs: each round queues ``--jobs`` no-op tasks in a throwaway schema of ``--dsn`` and
claims them, then times ``Execution.run_safely`` on each and ``to_batch`` on their
outcomes, 1,000 jobs at a time (about what a worker holds). Prints the median, min and
max microseconds of CPU a job over ``--rounds`` rounds (``--json``: every round).
Drops the schema.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.apps.celeriac_app import make_app
from bench.direct import register_worker
from celeriac.message import Job
from celeriac.worker.completer import to_batch
from celeriac.worker.executor import Execution

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SLICE = 1000  # jobs claimed and timed together: about what a worker holds at once


def claimed(app: Any, conn: psycopg.Connection[Any], worker_id: int, count: int) -> list[Job]:
    """``count`` no-op jobs, queued by ``delay_many`` and claimed."""
    app.tasks["bench.noop"].delay_many([[] for _ in range(count)])
    jobs: list[Job] = []
    while len(jobs) < count:
        got = app.broker.claim(conn, "celery", SLICE, worker_id)
        if not got:
            raise SystemExit(f"claimed {len(jobs)} of {count} jobs; the queue ran dry")
        jobs += got
    return jobs


def timed(app: Any, jobs: list[Job]) -> tuple[tuple[float, float], int]:
    """Microseconds of CPU a job, the executor's steps and ``to_batch``; and the count."""
    began = time.process_time()
    outcomes = [Execution(app, job, "executor@bench").run_safely() for job in jobs]
    ran = time.process_time()
    to_batch(outcomes)
    batched = time.process_time()
    failed = [o for o in outcomes if o.status != "SUCCESS"]
    if failed:
        raise SystemExit(f"{len(failed)} jobs did not succeed, e.g. {failed[0]}")
    per_job = ((ran - began) / len(jobs) * 1e6, (batched - ran) / len(jobs) * 1e6)
    return per_job, len(jobs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", default=DEFAULT_DSN)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs a round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write each round's figures to this file")
    options = p.parse_args(argv)
    if options.jobs < 1 or options.rounds < 1:
        p.error("--jobs and --rounds must be at least 1")
    schema = f"bench_executor_{uuid.uuid4().hex[:8]}"
    app = make_app(options.dsn, schema)
    rounds = []
    try:
        app.ensure_schema()
        with app.database.connect() as conn:
            app.broker.prepare_claims(conn)
            worker_id = register_worker(app, conn, "executor@bench")
            for _ in range(options.rounds):
                jobs = claimed(app, conn, worker_id, options.jobs)
                parts = [timed(app, jobs[i : i + SLICE]) for i in range(0, len(jobs), SLICE)]
                rounds.append(tuple(sum(us[k] * n for us, n in parts) / len(jobs) for k in (0, 1)))
    finally:
        app.close()
        with psycopg.connect(options.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"{options.jobs:,} no-op jobs a round, {options.rounds} rounds; us of CPU a job")
    for k, label in enumerate(("executor", "to_batch")):
        values = [r[k] for r in rounds]
        low, high = min(values), max(values)
        print(f"  {label:9} {statistics.median(values):6.1f}  [{low:.1f}-{high:.1f}]")
    if options.json:
        figures = [{"executor_us": r[0], "to_batch_us": r[1]} for r in rounds]
        Path(options.json).write_text(json.dumps({"rounds": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
