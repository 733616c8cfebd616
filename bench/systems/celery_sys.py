"""Celery 5 with its documented prefork worker, on Redis, RabbitMQ or SQLAlchemy+PostgreSQL."""

from __future__ import annotations

import os

import psycopg
import redis
from celery import chord, group

from bench.apps import celery_app
from bench.common import Workers, bin_path
from bench.systems.base import System

REDIS = "redis://127.0.0.1:6379"


class CelerySystem(System):
    """One Celery variant: ``broker`` and ``backend`` URLs as Celery takes them."""

    def __init__(
        self, name: str, label: str, broker: str, backend: str, db_dsn: str | None = None
    ) -> None:
        self.name, self.label = name, label
        self.broker, self.backend = broker, backend
        self.db_dsn = db_dsn
        self.app = celery_app.make_app(broker, backend)
        self._redis: redis.Redis | None = None
        self.app.finalize()

    def setup(self) -> None:
        self.reset()

    def reset(self) -> None:
        # A fresh client per workload: Celery's Redis result consumer subscribes to every
        # task it sends; thousands of stale subscriptions from the last workload would
        # fill its pub/sub buffer (Redis then cuts the client) and stall the next get().
        self.app.close()
        self.app = celery_app.make_app(self.broker, self.backend)
        self.app.finalize()
        try:
            with self.app.connection_for_write() as conn:
                conn.default_channel.queue_purge("celery")
        except Exception:
            pass
        if self.backend.startswith("redis://"):
            redis.Redis.from_url(self.backend).flushdb()
        elif self.db_dsn is not None:
            with psycopg.connect(self.db_dsn, autocommit=True) as conn:
                for table in ("celery_taskmeta", "celery_tasksetmeta", "kombu_message"):
                    # created by Celery/kombu at first use
                    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                        conn.execute(f"DELETE FROM {table}")

    def teardown(self) -> None:
        self.close_poll()
        self.reset()
        self.app.close()

    def enqueue_one(self, n: int) -> None:
        noop = self.app.tasks["bench.noop"]
        for _ in range(n):
            noop.delay()

    def enqueue_bulk(self, n: int) -> None:
        # Celery's bulk path: a group, sent through one producer connection
        noop = self.app.tasks["bench.noop"]
        group(noop.s() for _ in range(n)).apply_async()

    def done(self) -> int:
        if self.backend.startswith("redis://"):
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.backend)
            return int(self._redis.dbsize())
        try:
            return self.count("SELECT count(*) FROM celery_taskmeta")
        except psycopg.errors.UndefinedTable:  # created by the first stored result
            return 0

    def workers(self, concurrency: int) -> Workers:
        env = dict(os.environ, BENCH_BROKER=self.broker, BENCH_BACKEND=self.backend)
        command = [
            bin_path("celery"),
            "-A",
            "bench.apps.celery_app",
            "worker",
            "-l",
            "warning",
            "-c",
            str(concurrency),
            "-P",
            "prefork",
        ]
        return Workers([command], env)

    def send_started(self, sent: float, path: str) -> None:
        self.app.tasks["bench.started"].delay(sent, path)

    def roundtrip(self, value: int) -> int:
        return int(self.app.tasks["bench.echo"].delay(value).get(timeout=30))

    def send_fanout(self, request: int, parts: int, seconds: float, path: str) -> None:
        sleepy, combine = self.app.tasks["bench.sleepy"], self.app.tasks["bench.combine"]
        chord(sleepy.s(seconds) for _ in range(parts))(combine.s(request, path))


def celery_systems(pg_dsn_for: dict[str, str]) -> list[CelerySystem]:
    """The three Celery variants; ``pg_dsn_for['celery_sqla']`` is their PostgreSQL database."""
    sqla_dsn = pg_dsn_for["celery_sqla"]
    sqla_url = sqla_dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    return [
        CelerySystem("celery_redis", "Celery+Redis", f"{REDIS}/10", f"{REDIS}/11"),
        CelerySystem(
            "celery_rabbitmq",
            "Celery+RabbitMQ",
            "amqp://guest:guest@127.0.0.1:5672//",
            f"{REDIS}/12",
        ),
        CelerySystem(
            "celery_sqla",
            "Celery+SQLAlchemy/PG",
            f"sqla+{sqla_url}",
            f"db+{sqla_url}",
            db_dsn=sqla_dsn,
        ),
    ]
