"""procrastinate 3 with its documented worker (``procrastinate worker``)."""

from __future__ import annotations

import os

import psycopg

from bench.common import Workers, bin_path
from bench.systems.base import System

BATCH = 5000


class ProcrastinateSystem(System):
    """procrastinate in its own database (its schema lives in ``public``)."""

    name = "procrastinate"
    label = "procrastinate"
    has_results = False  # procrastinate stores no task results
    has_chords = False

    def __init__(self, dsn: str, processes: int = 2) -> None:
        self.db_dsn = dsn
        self.processes = processes
        os.environ["BENCH_DSN"] = dsn
        from bench.apps import procrastinate_app

        self.app = procrastinate_app.app
        self.app.open()

    def setup(self) -> None:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            installed = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if not installed or installed[0] is None:
            self.app.schema_manager.apply_schema()
        self.reset()

    def reset(self) -> None:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")
            conn.execute("TRUNCATE procrastinate_workers CASCADE")

    def close_clients(self) -> bool:
        self.app.close()
        self.app.open()
        return True

    def teardown(self) -> None:
        self.close_poll()
        self.app.close()

    def _task(self, name: str):  # type: ignore[no-untyped-def]
        return self.app.tasks[f"bench.{name}"]

    def enqueue_one(self, n: int) -> None:
        noop = self._task("noop")
        for _ in range(n):
            noop.defer()

    def enqueue_bulk(self, n: int) -> None:
        noop = self._task("noop")
        for start in range(0, n, BATCH):
            noop.batch_defer(*([{}] * min(BATCH, n - start)))

    def done(self) -> int:
        return self.count("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")

    def workers(self, concurrency: int) -> Workers:
        # one worker process per slot: async workers use one core each
        env = dict(os.environ, BENCH_DSN=self.db_dsn or "")
        command = [
            bin_path("procrastinate"),
            "--app=bench.apps.procrastinate_app.app",
            "worker",
            "--concurrency=1",
        ]
        return Workers([command] * concurrency, env)

    def send_started(self, sent: float, path: str) -> None:
        self._task("started").defer(sent=sent, path=path)
