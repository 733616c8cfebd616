"""``--autoscale MAX,MIN`` for the prefork pool.

Every second the autoscaler looks at demand: when every child is busy and due jobs are
waiting in the worker's queues, it grows the pool by as many as wait (up to MAX); when
children have been idle for ``keepalive`` seconds (30, or the ``AUTOSCALE_KEEPALIVE``
environment variable, as in Celery), it shrinks by one (down to MIN).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.prefork import PreforkPool

logger = logging.getLogger(__name__)


def parse_autoscale(value: str) -> tuple[int, int]:
    """``'10,3'`` → (10, 3); order-insensitive as in Celery; ``'10'`` → (10, 0)."""
    try:
        numbers = sorted((int(part) for part in value.split(",") if part.strip()), reverse=True)
    except ValueError:
        raise ImproperlyConfigured(f"bad --autoscale {value!r}: use MAX,MIN, e.g. 10,3") from None
    if not numbers or len(numbers) > 2 or numbers[0] < 1:
        raise ImproperlyConfigured(f"bad --autoscale {value!r}: use MAX,MIN, e.g. 10,3")
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


class Autoscaler:
    """Grows and shrinks a prefork pool between ``min`` and ``max`` children."""

    def __init__(
        self,
        pool: PreforkPool,
        max_: int,
        min_: int,
        waiting: Callable[[int], int],
        keepalive: float | None = None,
        interval: float = 1.0,
    ) -> None:
        self.pool = pool
        self.max, self.min = max_, max(1, min_)
        self.waiting = waiting
        self.keepalive = float(keepalive or os.environ.get("AUTOSCALE_KEEPALIVE") or 30.0)
        self.interval = interval
        self.idle_since: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="celeriac-autoscale", daemon=True)

    def update(self, max_: int, min_: int) -> None:
        self.max, self.min = max(max_, min_), max(1, min(max_, min_))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.step()
            except Exception as exc:
                logger.warning("autoscale: %s", exc)

    def step(self) -> None:
        """One decision: grow, shrink or leave the pool as it is."""
        pool, size = self.pool, self.pool.limit
        free = pool.free_slots()
        if size < self.min:
            pool.grow(self.min - size)
        elif size > self.max:
            pool.shrink(size - self.max)
        elif free == 0 and size < self.max:
            wanted = min(self.max - size, self.waiting(self.max - size))
            if wanted:
                logger.info("autoscale: growing the pool by %d to %d", wanted, size + wanted)
                pool.grow(wanted)
            self.idle_since = None
        elif free > 0 and size > self.min:
            now = time.monotonic()
            self.idle_since = self.idle_since or now
            if now - self.idle_since >= self.keepalive:
                logger.info("autoscale: shrinking the pool to %d", size - 1)
                pool.shrink(1)
                self.idle_since = now
        else:
            self.idle_since = None


__all__ = ["Autoscaler", "parse_autoscale"]
