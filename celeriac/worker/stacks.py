"""USR1: print every thread's stack to stderr (Celery's ``cry``), without stopping.

A Python-level signal handler, run by the interpreter between bytecodes in the main
thread: faulthandler's C-level dump of all threads races the running threads and was
seen to freeze a worker midway through a dump. The text goes out by ``os.write`` on the
descriptor, not through ``sys.stderr``: its buffer raises "reentrant call" when the
signal lands while the main thread is writing a log line there.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import FrameType


def dump_stacks(signum: int | None = None, frame: FrameType | None = None) -> None:
    """Write each thread's stack, most recent call first, to stderr."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines: list[str] = []
    for ident, top in sys._current_frames().items():
        lines.append(f"Thread {names.get(ident, '?')} (0x{ident:x}) (most recent call first):")
        lines.extend(entry.rstrip("\n") for entry in reversed(traceback.format_stack(top)))
        lines.append("")
    data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 2
    while data:
        try:
            data = data[os.write(fd, data) :]
        except OSError:
            return  # stderr is gone: nothing to tell


def install() -> None:
    """Dump stacks on SIGUSR1."""
    signal.signal(signal.SIGUSR1, dump_stacks)
