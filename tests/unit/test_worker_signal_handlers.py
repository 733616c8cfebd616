"""The worker's signal handlers take no lock: the main thread they interrupt may hold any.

A handler runs between two bytecodes of the main thread, which runs the claim loop. When
that thread held the lock inside the loop's ``woken`` event (``clear()`` and ``wait()``
take it every round) and the handler set that event, the handler waited for the lock
forever and the worker never exited: seen as a TERM that did not stop a worker, and as a
second INT arriving inside the first one's handler."""

from __future__ import annotations

import threading
from typing import Any

from celeriac import Celery
from celeriac.worker.consumer import Consumer
from celeriac.worker.worker import Worker


class StubPool:
    limit = 1

    def __init__(self) -> None:
        self.interrupted_in: list[str] = []  # the threads that called interrupt()

    def interrupt(self) -> None:
        self.interrupted_in.append(threading.current_thread().name)


def _worker() -> Worker:
    app = Celery("t", broker="postgresql://unused", celeriac_schema="unused")
    worker = Worker(app, hostname="w@test", pool="threads")
    pool: Any = StubPool()
    worker.pool = pool
    worker.consumer = Consumer(app, pool, ["celery"], "w@test", lambda: 1, print, 1.0)
    worker.start_signal_thread()
    return worker


def _in_thread_holding(locks: list[Any], act: Any) -> bool:
    """Run ``act`` in a thread that holds ``locks`` meanwhile (as an interrupted main
    thread would); True if it came back (a deadlock leaves the thread blocked)."""

    def run() -> None:
        for lock in locks:
            lock.acquire()
        try:
            act()
        finally:
            for lock in reversed(locks):
                lock.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    return not thread.is_alive()


def test_term_inside_the_claim_loops_event_lock_returns_and_shuts_down() -> None:
    worker = _worker()
    consumer = worker.consumer
    held = [consumer.woken._cond, consumer.stopping._cond]  # type: ignore[attr-defined]
    assert _in_thread_holding(held, lambda: worker._on_signal("warm"))
    assert consumer.stopped()  # the loop stops at once, on the flag
    worker.signals_handled_wait()
    assert worker.shutdown_mode == "warm" and consumer.stopping.is_set()
    assert not worker.cold.is_set()


def test_a_second_int_inside_the_first_is_cold() -> None:
    worker = _worker()
    consumer = worker.consumer
    held = [consumer.woken._cond, consumer.stopping._cond]  # type: ignore[attr-defined]

    def two_ints() -> None:
        threading.current_thread().name = "interrupted-main"
        worker._on_int(2, None)
        worker._on_int(2, None)

    assert _in_thread_holding(held, two_ints)
    # the handler itself interrupts the pool, once (solo: out of the task it interrupts);
    # the signals thread may interrupt it again as it acts on the cold shutdown
    pool: Any = worker.pool
    assert worker.cold_signalled and pool.interrupted_in.count("interrupted-main") == 1
    worker.signals_handled_wait()
    assert worker.cold.is_set() and worker.shutdown_mode == "cold"
