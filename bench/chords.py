"""How fast chords join: N chords of M tasks on W workers; prints seconds and rates.

    python -m bench.chords --chords 200 --size 10 --workers 2 --concurrency 4

Uses ``CELERIAC_BROKER_URL`` (default: the test database) in a fresh schema, dropped at
the end. Workers run in their own process groups and are stopped by group id.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chords", type=int, default=200)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    url = os.environ.setdefault("CELERIAC_BROKER_URL", DEFAULT_URL)
    schema = os.environ["CELERIAC_SCHEMA"] = f"bench_chords_{uuid.uuid4().hex[:8]}"
    from bench.chord_app import add, app, tsum
    from celeriac import chord

    app.ensure_schema()
    workers = [_start_worker(n, options.concurrency) for n in range(options.workers)]
    try:
        time.sleep(2.0)  # let the workers start (they log "ready")
        started = time.monotonic()
        results = [
            chord([add.s(n, i) for i in range(options.size)], tsum.s()).apply_async()
            for n in range(options.chords)
        ]
        published = time.monotonic() - started
        for result in results:
            result.get(timeout=300)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        app.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    tasks = options.chords * (options.size + 1)
    print(
        f"{options.chords} chords x {options.size} tasks, {options.workers} workers "
        f"-c {options.concurrency}: published in {published:.2f}s, all bodies done in "
        f"{elapsed:.2f}s ({options.chords / elapsed:.0f} chords/s, {tasks / elapsed:.0f} tasks/s)"
    )


def _start_worker(n: int, concurrency: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celeriac", "-A", "bench.chord_app", "worker"]
    command += ["-l", "warning", "-c", str(concurrency), "-n", f"chords{n}@%h"]
    return subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


if __name__ == "__main__":
    main()
