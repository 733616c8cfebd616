"""How fast chords join: N chords of M tasks on W workers; prints seconds and rates.

    python -m bench.chords --chords 200 --size 10 --workers 2 --concurrency 4

Uses ``CELERIAC_BROKER_URL`` (default: the test database) in a fresh schema, dropped at
the end. Workers run in their own process groups and are stopped by group id.
"""

from __future__ import annotations

import argparse
import time

from bench.common import chord_app_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chords", type=int, default=200)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    from celeriac import chord

    with chord_app_workers("chords", options.workers, options.concurrency):
        from bench.chord_app import add, tsum

        started = time.monotonic()
        results = [
            chord([add.s(n, i) for i in range(options.size)], tsum.s()).apply_async()
            for n in range(options.chords)
        ]
        published = time.monotonic() - started
        for result in results:
            result.get(timeout=300)
        elapsed = time.monotonic() - started
    tasks = options.chords * (options.size + 1)
    print(
        f"{options.chords} chords x {options.size} tasks, {options.workers} workers "
        f"-c {options.concurrency}: published in {published:.2f}s, all bodies done in "
        f"{elapsed:.2f}s ({options.chords / elapsed:.0f} chords/s, {tasks / elapsed:.0f} tasks/s)"
    )


if __name__ == "__main__":
    main()
