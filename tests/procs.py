"""Worker subprocesses for the end-to-end and fault suites: real ``celeriac worker``
processes, in their own process group, whose log lines can be awaited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class WorkerProcess:
    """``[wrap...] python -m celeriac -A <app> [pre...] worker -l info [args...]``; ``wrap``
    is a command prefix such as ``ip netns exec NAME`` (it must exec, keeping the pid)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        *,
        app: str,
        cwd: Path,
        pre: tuple[str, ...] = (),
        logfile: Path | None = None,
        wrap: tuple[str, ...] = (),
    ) -> None:
        self.lines: list[str] = []
        self.times: list[float] = []  # when each line arrived (time.monotonic())
        self.cond = threading.Condition()
        self.logfile = logfile
        command = [sys.executable, "-m", "celeriac", "-A", app, *pre, "worker", "-l", "info"]
        self.proc = subprocess.Popen(
            [*wrap, *command, *args],
            cwd=cwd,
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
        out = open(self.logfile, "a") if self.logfile else None
        try:
            for line in self.proc.stdout:
                if out is not None:
                    out.write(line)
                with self.cond:
                    self.lines.append(line.rstrip("\n"))
                    self.times.append(time.monotonic())
                    self.cond.notify_all()
        finally:
            if out is not None:
                out.close()
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
        with self.cond:
            return "\n".join(self.lines)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """The exit code; an AssertionError with the log (and, for a worker, every thread's
        stack) if it has not exited in time."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            start = len(self.lines)
            self.signal(signal.SIGUSR1)  # a worker dumps every thread's stack (its log)
            try:
                self.wait_for_line("most recent call first", timeout=5, start=start)
                self.proc.wait(1)  # the dump's remaining lines
            except (AssertionError, subprocess.TimeoutExpired):
                pass
            raise AssertionError(f"still running after {timeout} s; log:\n{self.log}") from None

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its children)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        """TERM (warm shutdown), KILL if it is not gone in 15 s; then release the pipe."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.close()

    def close(self) -> None:
        """KILL if still running; release the pipe."""
        if self.proc.poll() is None:
            self.kill()
        self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
