"""``-D/--detach`` with ``--pidfile`` and ``--logfile`` (``%n``, ``%I`` expanded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.faultkit import HERE, wait_until

pytestmark = pytest.mark.e2e


def _celeriac(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "celeriac", "-A", "proj", "worker", "-I", "faults_tasks"]
    return subprocess.run(
        [*command, *args], cwd=HERE, env=env, capture_output=True, text=True, timeout=60
    )


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_detach_pidfile_logfile_and_hup(
    tasks: Any, worker_env: dict[str, str], tmp_path: Path
) -> None:
    args = ("-l", "info", "-c", "1", "-n", "daemon@testhost", "-D")
    # the pidfile is spelled out so that the twin below (another node name) collides
    files = ("--pidfile", str(tmp_path / "daemon.pid"), "-f", str(tmp_path / "%n%I.log"))
    pidfile, logfile = tmp_path / "daemon.pid", tmp_path / "daemon.log"
    started = _celeriac(worker_env, *args, *files)
    assert started.returncode == 0, started.stderr  # the foreground process returns at once
    pid = int(wait_until(lambda: _text(pidfile).strip(), 30, "the pidfile"))
    try:
        wait_until(lambda: " ready." in _text(logfile), 30, "ready in the logfile")
        assert tasks.whoami.delay().get(timeout=10) != pid  # run by a pool child
        # a second worker with the same pidfile is refused, on the terminal
        twin = _celeriac(worker_env, "-n", "twin@testhost", "-D", *files)
        assert twin.returncode != 0
        assert "names a running process" in twin.stderr
        # HUP: restarted in place, still detached, same pid, pidfile kept
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: _text(logfile).count(" ready.") == 2, 30, "ready again")
        assert "Restarting celeriac worker" in _text(logfile)
        assert int(_text(pidfile)) == pid
        assert tasks.whoami.delay().get(timeout=10) != pid
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pidfile.exists(), 30, "the pidfile removed at exit")
        assert "Warm shutdown" in _text(logfile)
    finally:
        if pidfile.exists():
            os.kill(pid, signal.SIGKILL)
