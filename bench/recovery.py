"""How fast celeriac recovers from a killed worker or pool process; prints numbers.

    python -m bench.recovery --rounds 5

Whole worker: a worker runs one early-acknowledged and one acks_late task, an idle
second worker is up, the first one's process group gets SIGKILL. Measured from the
kill: the early task recorded FAILURE (WorkerLostError) and the acks_late task run
again to completion by the second worker. Pool process: the child running an acks_late
task gets SIGKILL; measured until the task has run again in the replacement child.

Uses ``CELERIAC_BROKER_URL`` (default: the test database) in a fresh schema, dropped
at the end. Detection of a dead worker is bounded by the liveness lock plus two
heartbeat intervals (``worker_heartbeat_interval``, 2 s) and the maintenance round.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    url = os.environ.setdefault("CELERIAC_BROKER_URL", DEFAULT_URL)
    schema = os.environ["CELERIAC_SCHEMA"] = f"bench_recovery_{uuid.uuid4().hex[:8]}"
    from bench.recovery_app import app

    app.ensure_schema()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _report(
                "whole worker (SIGKILL)",
                [_kill_worker(app, Path(tmp), n) for n in range(options.rounds)],
            )
            _report(
                "pool process (SIGKILL)",
                [_kill_child(app, Path(tmp), n) for n in range(options.rounds)],
            )
    finally:
        app.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _report(what: str, rounds: list[dict[str, float]]) -> None:
    for key in rounds[0]:
        values = sorted(r[key] for r in rounds)
        print(
            f"{what}: {key}: median {values[len(values) // 2]:.2f} s, "
            f"min {values[0]:.2f} s, max {values[-1]:.2f} s ({len(values)} rounds)"
        )


def _kill_worker(app: Any, tmp: Path, n: int) -> dict[str, float]:
    from bench.recovery_app import early, late

    marker, gate = tmp / f"w{n}.started", tmp / f"w{n}.gate"
    victim = _start(f"victim{n}")
    rescuer = None
    try:
        lost = early.delay(str(marker), str(gate))
        again = late.delay(str(marker), str(gate))
        _wait(lambda: marker.exists() and len(marker.read_text().split()) == 2)
        rescuer = _start(f"rescuer{n}")
        gate.touch()
        killed = time.monotonic()
        os.killpg(victim.pid, signal.SIGKILL)
        lost.get(timeout=60, propagate=False)
        failed = time.monotonic() - killed
        again.get(timeout=60)
        return {"early-ack FAILURE recorded": failed, "acks_late re-run done": _since(killed)}
    finally:
        _stop(victim)
        if rescuer is not None:
            _stop(rescuer)


def _kill_child(app: Any, tmp: Path, n: int) -> dict[str, float]:
    from bench.recovery_app import late

    marker, gate = tmp / f"c{n}.started", tmp / f"c{n}.gate"
    worker = _start(f"parent{n}")
    try:
        result = late.delay(str(marker), str(gate))
        _wait(lambda: marker.exists() and marker.read_text().strip())
        killed = time.monotonic()
        os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
        _wait(lambda: len(marker.read_text().split()) == 2)
        restarted = _since(killed)
        gate.touch()
        result.get(timeout=60)
        return {"acks_late running again": restarted}
    finally:
        _stop(worker)


def _start(name: str) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-A",
            "bench.recovery_app",
            "worker",
            "-c",
            "2",
            "-n",
            f"{name}@%h",
            "-l",
            "info",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if b" ready." in line:
            break
    subprocess.Popen(["cat"], stdin=worker.stdout, stdout=subprocess.DEVNULL)  # keep draining
    return worker


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(60)


def _wait(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _since(start: float) -> float:
    return time.monotonic() - start


if __name__ == "__main__":
    main()
