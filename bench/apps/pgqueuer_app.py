"""The benchmark's jobs for pgqueuer (``pgq run bench.apps.pgqueuer_app:main``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench.common import stamp

DSN = os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/celeriac_bench_pgqueuer")


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """pgqueuer's documented factory: a driver, a PgQueuer, its entrypoints."""
    connection = await asyncpg.connect(DSN)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("bench.noop")
    async def noop(job: Job) -> None:
        """The no-op job of enqueue and drain."""

    @pgq.entrypoint("bench.started")
    async def started(job: Job) -> None:
        """Latency probe: record when it was sent and when it started."""
        now = time.time()
        data = json.loads(job.payload or b"{}")
        stamp(data["path"], data["sent"], now)

    try:
        yield pgq
    finally:
        await connection.close()


if __name__ == "__main__":
    # pgqueuer's documented programmatic runner with the CLI's defaults (batch size 10).
    # ``pgq run`` itself is not used: in pgqueuer 1.6 its --log-level option crashes.
    import asyncio

    from pgqueuer import run

    asyncio.run(run(main))
