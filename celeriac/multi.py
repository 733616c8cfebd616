"""``celeriac multi``: Celery's node syntax, expanded into worker command lines.

``3`` → celery1@host … celery3@host (``--range-prefix``); ``w1 w2`` → w1@host, w2@host;
``w1@%h`` as given. Options after the names go to every node; ``-c:1 10``, ``-c:1-3 10``,
``-Q:w1,w2 images`` or ``--loglevel:w1=debug`` go only to the nodes selected by 1-based
index, index range or name. Each node runs ``celeriac worker --detach`` with a pidfile and
a logfile (templates: ``%n`` node name part, ``%h`` full node name, ``%I`` pool index).
No I/O here except reading pidfiles and signalling/awaiting processes.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field

from platformdirs import user_log_dir, user_state_dir

from celeriac.exceptions import ImproperlyConfigured


def default_pidfile() -> str:
    return os.path.join(user_state_dir("celeriac"), "%n.pid")


def default_logfile() -> str:
    return os.path.join(user_log_dir("celeriac"), "%n%I.log")


@dataclass
class Node:
    """One worker node of a multi command."""

    name: str
    index: int
    pairs: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def options(self) -> list[str]:
        """The node's worker options, flattened."""
        flat: list[str] = []
        for key, value in self.pairs:
            flat += [key] if value is None else [key, value]
        return flat

    def set(self, key: str, value: str | None, override: bool) -> None:
        if override:
            self.pairs = [pair for pair in self.pairs if pair[0] != key]
        self.pairs.append((key, value))

    @property
    def short(self) -> str:
        return self.name.partition("@")[0]


def expand_file(template: str, nodename: str, index: int = 0) -> str:
    """%n name part, %h full node name, %d domain, %i / %I pool index (worker's rules)."""
    from celeriac.cli.worker import expand_path

    expanded = expand_path(template, nodename, index)
    assert expanded is not None
    return expanded


def _full_name(name: str, host: str) -> str:
    name = name.replace("%h", host).replace("%n", host.partition(".")[0])
    return name if "@" in name else f"{name}@{host}"


def split_argv(argv: list[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Leading names, then (option, value) pairs; ``--x=v`` and ``-x v`` both accepted."""
    names: list[str] = []
    index = 0
    while index < len(argv) and not argv[index].startswith("-"):
        names.append(argv[index])
        index += 1
    pairs: list[tuple[str, str | None]] = []
    while index < len(argv):
        token = argv[index]
        if not token.startswith("-"):
            raise ImproperlyConfigured(f"unexpected argument {token!r} after the options")
        if token.startswith("--") and "=" in token:
            key, _, value = token.partition("=")
            pairs.append((key, value))
            index += 1
        elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
            pairs.append((token, argv[index + 1]))
            index += 2
        else:
            pairs.append((token, None))
            index += 1
    return names, pairs


def _selected(selector: str, node: Node) -> bool:
    for part in selector.split(","):
        if part.isdigit() and int(part) == node.index:
            return True
        low, dash, high = part.partition("-")
        if dash and low.isdigit() and high.isdigit() and int(low) <= node.index <= int(high):
            return True
        if part in (node.name, node.short):
            return True
    return False


def expand_nodes(
    argv: list[str], range_prefix: str = "celery", host: str | None = None
) -> list[Node]:
    """Celery's node syntax → nodes with their own worker options."""
    host = host or socket.gethostname()
    names, pairs = split_argv(argv)
    if not names:
        raise ImproperlyConfigured("no nodes given: e.g. `multi start 3` or `multi start w1 w2`")
    if len(names) == 1 and names[0].isdigit():
        count = int(names[0])
        if count < 1:
            raise ImproperlyConfigured("the number of nodes must be at least 1")
        names = [f"{range_prefix}{i}" for i in range(1, count + 1)]
    nodes = [Node(_full_name(name, host), i) for i, name in enumerate(names, start=1)]
    if len({node.name for node in nodes}) != len(nodes):
        raise ImproperlyConfigured(f"node names repeat: {' '.join(names)}")
    for key, value in pairs:  # options for all nodes first; a per-node one replaces them
        option, _, selector = key.partition(":")
        for node in nodes:
            if not selector or _selected(selector, node):
                node.set(option, value, override=bool(selector))
    return nodes


def read_pid(path: str) -> int | None:
    """The pid in a pidfile, if the file exists and the process is alive."""
    try:
        with open(path) as handle:
            pid = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and alive(pid) else None


def alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def wait_gone(pid: int, timeout: float | None = None) -> bool:
    """Wait until process ``pid`` has exited (woken by a pidfd); False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        fd = -1
    try:
        poller = select.poll()
        if fd >= 0:
            poller.register(fd, select.POLLIN)
        while alive(pid):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            wait = 1.0 if remaining is None else min(1.0, remaining)
            if fd >= 0:
                poller.poll(int(wait * 1000) + 1)
            else:
                time.sleep(min(wait, 0.1))
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def send(pid: int, signum: int) -> bool:
    """Signal a node; SIGKILL goes to its whole process group (a detached worker has a
    session of its own), so no pool child outlives it."""
    try:
        group = os.getpgid(pid)
        if signum == signal.SIGKILL and group == os.getsid(pid) and group != os.getpgrp():
            os.killpg(group, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def signum_of(text: str) -> int:
    """``-KILL``, ``-9``, ``SIGTERM`` → a signal number."""
    text = text.lstrip("-").upper()
    if text.isdigit():
        return int(text)
    try:
        return int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))
    except AttributeError:
        raise ImproperlyConfigured(f"unknown signal {text!r}") from None


__all__ = [
    "Node",
    "alive",
    "default_logfile",
    "default_pidfile",
    "expand_file",
    "expand_nodes",
    "read_pid",
    "send",
    "signum_of",
    "split_argv",
    "wait_gone",
]
