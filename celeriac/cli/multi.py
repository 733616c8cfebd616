"""``celeriac multi``: start, stop and restart named worker nodes (see ``celeriac.multi``)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

import click

from celeriac.cli.base import Context, cli, fail
from celeriac.exceptions import CeleriacError
from celeriac.multi import (
    Node,
    default_logfile,
    default_pidfile,
    expand_file,
    expand_nodes,
    read_pid,
    send,
    signum_of,
    wait_gone,
)

ACTIONS = ("start", "stop", "stopwait", "restart", "kill", "show", "names")
OWN_VALUES = ("--pidfile", "--logfile", "--range-prefix", "--executable")
OWN_FLAGS = ("--nosplash", "--quiet", "-q", "--verbose", "--no-color")
SIGNALS = {"TERM", "KILL", "INT", "QUIT", "HUP", "USR1", "9", "15", "2", "3", "1"}
START_TIMEOUT = 60.0

HELP = f"""Start, stop and restart several worker nodes.

\b
  celeriac -A proj multi start 3 -c 2             celery1@host .. celery3@host
  celeriac -A proj multi start w1 w2 -Q:w2 images  per-node options: -c:1 10, -Q:1-2 x
  celeriac -A proj multi stopwait w1 w2            TERM, then wait until they are gone
  celeriac -A proj multi restart 3                 each node: stopwait, then start
  celeriac -A proj multi stop 3 -KILL              signal and return (default TERM)

Give stop/restart the same names and --pidfile as start. Defaults (user-writable):
--pidfile {default_pidfile()} and --logfile {default_logfile()}
(%n node name part, %h full node name, %I pool index).
"""


def own_options(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Take multi's own options (and a -SIGNAL) out of the argument list."""
    found: dict[str, Any] = {}
    rest: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        key, eq, value = token.partition("=")
        if key in OWN_VALUES:
            if not eq:
                if index + 1 >= len(args):
                    raise click.UsageError(f"{key} needs a value")
                index += 1
                value = args[index]
            found[key.lstrip("-").replace("-", "_")] = value
        elif token in OWN_FLAGS:
            found[token.lstrip("-").replace("-", "_")] = True
        elif token.startswith("-") and token[1:].upper().removeprefix("SIG") in SIGNALS:
            found["signal"] = token
        else:
            rest.append(token)
        index += 1
    return found, rest


def worker_command(ctx: Context, node: Node, pidfile: str, logfile: str, python: str) -> list[str]:
    """The command line that starts ``node`` in the background."""
    head = [python, "-m", "celeriac"]
    if ctx.app_path:
        head += ["-A", ctx.app_path]
    if ctx.broker:
        head += ["-b", ctx.broker]
    if ctx.result_backend:
        head += ["--result-backend", ctx.result_backend]
    files = ["--pidfile", pidfile, "--logfile", logfile]
    return [*head, "worker", "--detach", "-n", node.name, *files, *node.options]


@cli.command(
    help=HELP,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("action", type=click.Choice(ACTIONS))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def multi(ctx: Context, action: str, args: tuple[str, ...]) -> None:
    try:
        options, rest = own_options(list(args))
        nodes = expand_nodes(rest, options.get("range_prefix", "celery"))
        sys.exit(Multi(ctx, nodes, options).run(action))
    except CeleriacError as exc:
        fail(str(exc))


class Multi:
    """One multi command over its nodes."""

    def __init__(self, ctx: Context, nodes: list[Node], options: dict[str, Any]) -> None:
        self.ctx = ctx
        self.nodes = nodes
        self.pidfile = str(options.get("pidfile") or default_pidfile())
        self.logfile = str(options.get("logfile") or default_logfile())
        self.python = str(options.get("executable") or sys.executable)
        self.quiet = bool(options.get("quiet") or options.get("q"))
        self.signum = signum_of(options.get("signal") or "TERM")

    def say(self, text: str) -> None:
        if not self.quiet:
            click.echo(text)

    def run(self, action: str) -> int:
        if action == "names":
            click.echo("\n".join(node.name for node in self.nodes))
            return 0
        if action == "show":
            for node in self.nodes:
                click.echo(shlex.join(self.command(node)))
            return 0
        if action in ("start", "restart") and not self.ctx.app_path:
            raise click.UsageError("multi start needs the app: celeriac -A proj multi start ...")
        runner = {
            "start": self.start,
            "stop": lambda: self.stop(self.signum, wait=False),
            "stopwait": lambda: self.stop(signal.SIGTERM, wait=True),
            "kill": lambda: self.stop(signal.SIGKILL, wait=True),
            "restart": self.restart,
        }[action]
        return int(runner())

    def files(self, node: Node) -> tuple[str, str]:
        return expand_file(self.pidfile, node.name), expand_file(self.logfile, node.name)

    def command(self, node: Node) -> list[str]:
        return worker_command(self.ctx, node, self.pidfile, self.logfile, self.python)

    def start(self, nodes: list[Node] | None = None) -> int:
        self.say("> Starting nodes...")
        launched = []
        for node in nodes or self.nodes:
            pidfile, logfile = self.files(node)
            pid = read_pid(pidfile)
            if pid:
                self.say(f"\t> {node.name}: already running (pid {pid})")
                continue
            if os.path.exists(pidfile):  # left by a killed node: its process is gone
                os.unlink(pidfile)
            for path in (pidfile, logfile):
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            done = subprocess.run(self.command(node), stdin=subprocess.DEVNULL, check=False)
            if done.returncode:
                self.say(f"\t> {node.name}: FAILED (exit {done.returncode})")
                return 1
            launched.append(node)
        return self.await_started(launched)

    def await_started(self, nodes: list[Node]) -> int:
        """Wait until each launched node is a live worker (or has died)."""
        pending = {node.name: node for node in nodes}
        failed = 0
        began = time.monotonic()
        while pending:
            live = {n["name"] for n in self.ctx.app.control.live_nodes()}
            for name in [n for n in pending if n in live]:
                self.say(f"\t> {name}: OK")
                del pending[name]
            elapsed = time.monotonic() - began
            for name, node in list(pending.items()):
                # a node gets 10 s to write its pidfile, and START_TIMEOUT to come up
                if elapsed > START_TIMEOUT or (elapsed > 10 and not self._running(node)):
                    self.say(f"\t> {name}: FAILED\n{self._log_tail(node)}")
                    del pending[name]
                    failed += 1
            if pending:
                time.sleep(0.2)
        return 1 if failed else 0

    def _running(self, node: Node) -> bool:
        return read_pid(self.files(node)[0]) is not None

    def _log_tail(self, node: Node, lines: int = 10) -> str:
        try:
            with open(self.files(node)[1]) as handle:
                tail = handle.read().splitlines()[-lines:]
        except OSError:
            tail = ["(no log file)"]
        return "\n".join(f"\t\t{line}" for line in tail)

    def stop(self, signum: int, wait: bool, nodes: list[Node] | None = None) -> int:
        self.say("> Stopping nodes...")
        name = signal.Signals(signum).name.removeprefix("SIG")
        waiting = []
        for node in nodes or self.nodes:
            pid = read_pid(self.files(node)[0])
            if pid is None:
                self.say(f"\t> {node.name}: not running")
                continue
            if send(pid, signum):
                self.say(f"\t> {node.name}: {name} -> {pid}")
                waiting.append((node, pid))
        if wait:
            for node, pid in waiting:
                wait_gone(pid)
                self.say(f"\t> {node.name}: DOWN")
        return 0

    def restart(self) -> int:
        """Each node in turn: TERM, wait until it is gone, start it again."""
        code = 0
        for node in self.nodes:
            self.stop(signal.SIGTERM, wait=True, nodes=[node])
            code = max(code, self.start([node]))
        return code
