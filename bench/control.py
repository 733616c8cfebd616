"""Remote control and beat: reply latency and tick accuracy; prints numbers.

    python -m bench.control --workers 2 --pings 50 --beat-seconds 10

Uses ``CELERIAC_BROKER_URL`` (default: the test database) in a fresh schema, dropped at
the end. Workers run in their own process groups and are stopped by group id.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from psycopg import sql

from bench.common import chord_app_workers, latency_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--beat-seconds", type=float, default=10.0)
    options = parser.parse_args()
    with chord_app_workers("control", options.workers, 1) as app:
        _pings(app, options.workers, options.pings)
        _status_cli()
        _beats(app, options.beat_seconds)


def _pings(app: object, workers: int, pings: int) -> None:
    samples = []
    for _ in range(pings):
        began = time.perf_counter()
        replies = app.control.inspect(timeout=5).ping()  # type: ignore[attr-defined]
        samples.append(time.perf_counter() - began)
        assert replies is not None and len(replies) == workers
    stats = latency_summary(samples)
    print(
        f"inspect ping, {workers} workers, {pings} calls: p50 {stats['p50']:.1f} ms, "
        f"p95 {stats['p95']:.1f} ms, max {stats['max']:.1f} ms"
    )


def _status_cli() -> None:
    samples = []
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "bench.chord_app", "status"],
            check=True, capture_output=True,
        )  # fmt: skip
        samples.append(time.perf_counter() - began)
    print(
        f"`celeriac status` wall time (process start included): median {sorted(samples)[2]:.2f} s"
    )


def _beats(app: object, seconds: float) -> None:
    from celeriac.beat import Beat, save_periodic_task

    save_periodic_task(app, "every-second", "bench.chord_app.add", 1.0, args=(1, 1))  # type: ignore[arg-type]
    beats = [Beat(app, max_interval=1) for _ in range(2)]  # type: ignore[arg-type]
    threads = [threading.Thread(target=b.run, daemon=True) for b in beats]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    for beat in beats:
        beat.stop()
    for thread in threads:
        thread.join(10)
    db = app.database  # type: ignore[attr-defined]
    with db.connection() as conn:
        rows = conn.execute(
            sql.SQL("SELECT run_at, created_at FROM {}.periodic_ticks ORDER BY run_at").format(
                sql.Identifier(db.schema)
            )
        ).fetchall()
    late = [(created - run_at).total_seconds() for run_at, created in rows]
    stats = latency_summary(late)
    distinct = len({row[0] for row in rows})
    print(
        f"2 beats, 1 s schedule, {seconds:.0f} s: {len(rows)} ticks ({distinct} distinct "
        f"instants; published by beat 1: {beats[0].published}, beat 2: {beats[1].published}); "
        f"lateness p50 {stats['p50']:.1f} ms, max {stats['max']:.1f} ms"
    )


if __name__ == "__main__":
    main()
