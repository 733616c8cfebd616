"""`make demo` for now: start a worker, send tasks, print their results, stop the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("CELERIAC_BROKER_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ.setdefault("CELERIAC_SCHEMA", "celeriac_demo")

from tasks import add, flaky, stuck  # noqa: E402


def main() -> int:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "tasks", "worker", "-l", "info", "-c", "4",
         "-n", "demo@%h"], cwd=HERE, env=env)
    try:
        started = time.monotonic()
        print("add(2, 3) =", add.delay(2, 3).get(timeout=30))
        print(f"  round trip incl. worker start: {time.monotonic() - started:.2f}s")
        results = [add.delay(i, i) for i in range(100)]
        began = time.monotonic()
        total = sum(r.get(timeout=30) for r in results)
        print(f"100 tasks: sum = {total} in {time.monotonic() - began:.2f}s")
        print("flaky(2) =", flaky.delay(2).get(timeout=30))
        result = stuck.delay()
        print("stuck() ->", result.get(timeout=30, propagate=False), result.state)
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


if __name__ == "__main__":
    sys.exit(main())
