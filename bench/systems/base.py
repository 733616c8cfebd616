"""What a benchmarked system provides; the workloads in ``bench.workloads`` drive it."""

from __future__ import annotations

from typing import Any

import psycopg

from bench.common import Workers


class System:
    """One task queue under test. Subclasses implement the hooks they support."""

    name = "base"
    label = "base"
    has_results = True  # delay().get() round trip
    has_chords = True  # fan-out workload
    has_transient = False  # an opt-in enqueue that does not wait for the disk (enqueue_transient)
    workloads: tuple[str, ...] | None = None  # only these (bench.run's names); None: all
    db_dsn: str | None = None  # PostgreSQL database whose transactions we count

    _poll_conn: Any = None

    def count(self, query: str) -> int:
        """Run a count query on one kept connection (polling must not open a session each time)."""
        row = self.poll_conn().execute(query).fetchone()
        return int(row[0]) if row else 0

    def query(self, query: Any, params: Any = None) -> list[Any]:
        """The rows of a query (text or ``psycopg.sql``), on the kept autocommit connection."""
        rows: list[Any] = self.poll_conn().execute(query, params).fetchall()
        return rows

    def poll_conn(self) -> Any:
        """The kept autocommit connection to the system's database."""
        if self._poll_conn is None or self._poll_conn.closed:
            assert self.db_dsn is not None
            self._poll_conn = psycopg.connect(self.db_dsn, autocommit=True)
        return self._poll_conn

    def close_poll(self) -> None:
        if self._poll_conn is not None:
            self._poll_conn.close()
            self._poll_conn = None

    def setup(self) -> None:
        """Create schema/queues; called once."""

    def reset(self) -> None:
        """Empty queues and results (no worker running)."""

    def close_clients(self) -> bool:
        """Close the producer's connections so PostgreSQL reports their transactions
        (an idle session flushes its counters only every ~10 s); False if not possible."""
        return False

    def teardown(self) -> None:
        """Drop what setup created and close connections."""

    def enqueue_one(self, n: int) -> None:
        """Publish ``n`` no-op tasks one call at a time (the timed part)."""
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> None:
        """Publish ``n`` no-op tasks through the system's bulk path (the timed part)."""
        raise NotImplementedError

    def enqueue_transient(self, n: int) -> None:
        """Publish ``n`` no-op tasks one call at a time in the system's documented
        faster mode that a crash may lose (the timed part; only if ``has_transient``)."""
        raise NotImplementedError

    def fill(self, n: int) -> None:
        """Queue ``n`` no-op tasks as fast as possible (untimed set-up)."""
        self.enqueue_bulk(n)

    def done(self) -> int:
        """How many no-op tasks completed since the last reset (results stored)."""
        raise NotImplementedError

    def workers(self, concurrency: int) -> Workers:
        """The system's documented worker(s) with ``concurrency`` task slots in total."""
        raise NotImplementedError

    def send_started(self, sent: float, path: str) -> None:
        """Publish one latency probe."""
        raise NotImplementedError

    def roundtrip(self, value: int) -> int:
        """``delay(value).get()``."""
        raise NotImplementedError

    def send_fanout(self, request: int, parts: int, seconds: float, path: str) -> None:
        """Publish one request: a chord of ``parts`` sleeping tasks and a combining callback."""
        raise NotImplementedError
