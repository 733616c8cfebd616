"""Real ``celeriac worker`` subprocesses that receive real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.faultkit import fworker, tasks  # noqa: F401  (fixtures)

HERE = Path(__file__).parent


class WorkerProcess:
    """A worker subprocess whose log lines can be awaited."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "proj", "worker", "-l", "info", *args],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for_line(self, text: str, timeout: float = 30, start: int = 0) -> int:
        """Wait until a log line contains ``text``; return its index."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for index in range(start, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no log line with {text!r}; log:\n" + self.log)
                self.cond.wait(remaining)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its children)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


@pytest.fixture
def worker_env(dsn: str, schema: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CELERIAC_TEST_DSN": dsn,
            "CELERIAC_SCHEMA": schema,
            "PYTHONPATH": str(HERE) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


@pytest.fixture
def proj_app(schema: str, dsn: str) -> Iterator[object]:
    """The tests' own handle on the e2e app, on the same schema as the workers."""
    os.environ["CELERIAC_SCHEMA"] = schema
    sys.path.insert(0, str(HERE))
    import proj  # type: ignore[import-not-found]

    proj.app.conf["broker_url"] = dsn
    proj.app.conf["celeriac_schema"] = schema
    proj.app._db = proj.app._result_db = None
    proj.app._broker = proj.app._backend = None
    yield proj.app
    proj.app.close()


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[object]:
    started: list[WorkerProcess] = []

    def start(*args: str, ready: bool = True) -> WorkerProcess:
        worker = WorkerProcess(list(args), worker_env)
        started.append(worker)
        if ready:
            worker.wait_for_line(" ready.")
        return worker

    yield start
    for worker in started:
        worker.close()
