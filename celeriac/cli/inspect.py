"""``celeriac inspect``, ``celeriac control`` and ``celeriac status``: Celery's remote
control, through the database (see ``celeriac.control``).

Exit codes: 0 when every addressed worker replied without error; 1 for bad arguments, an
unknown node or an error reply; 69 (EX_UNAVAILABLE, as Celery) when nobody replied.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from celeriac.cli.base import Context, cli, fail, run_safely

EX_UNAVAILABLE = 69

INSPECT = {
    "ping": "",
    "active": "",
    "reserved": "",
    "scheduled": "",
    "registered": "[ATTR...]",
    "stats": "",
    "active_queues": "",
    "revoked": "",
    "query_task": "TASK_ID...",
    "conf": "[include_defaults]",
}
CONTROL = {
    "revoke": "TASK_ID...",
    "terminate": "SIGNAL TASK_ID...",
    "rate_limit": "TASK_NAME RATE (e.g. 10/m)",
    "time_limit": "TASK_NAME SOFT [HARD]",
    "shutdown": "",
    "pool_grow": "[N=1]",
    "pool_shrink": "[N=1]",
    "autoscale": "MAX MIN",
    "add_consumer": "QUEUE",
    "cancel_consumer": "QUEUE",
}


def _usage(table: dict[str, str]) -> str:
    return "\n\n".join(f"  {name} {args}".rstrip() for name, args in table.items())


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise click.UsageError(f"{what} must be a number, got {text!r}") from None


def inspect_arguments(action: str, args: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments of an inspect command, from the command line."""
    if action == "query_task":
        if not args:
            raise click.UsageError("query_task needs at least one task id")
        return {"ids": list(args)}
    if action == "registered":
        return {"taskinfoitems": list(args)}
    if action == "conf":
        return {"with_defaults": bool(args and args[0].lower() in ("1", "true", "yes"))}
    if args:
        raise click.UsageError(f"inspect {action} takes no arguments")
    return {}


def control_arguments(action: str, args: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments of a control command, from the command line."""
    need = {"revoke": 1, "terminate": 2, "rate_limit": 2, "time_limit": 2, "autoscale": 2}
    need |= {"add_consumer": 1, "cancel_consumer": 1}
    if len(args) < need.get(action, 0):
        raise click.UsageError(f"usage: celeriac control {action} {CONTROL[action]}")
    if action == "revoke":
        return {"task_ids": list(args)}
    if action == "terminate":
        return {"task_ids": list(args[1:]), "terminate": True, "signal": args[0]}
    if action == "rate_limit":
        return {"task_name": args[0], "rate_limit": args[1]}
    if action == "time_limit":
        hard = _number(args[2], "HARD") if len(args) > 2 else None
        return {"task_name": args[0], "soft": _number(args[1], "SOFT"), "hard": hard}
    if action in ("pool_grow", "pool_shrink"):
        return {"n": int(_number(args[0], "N")) if args else 1}
    if action == "autoscale":
        return {"max": int(_number(args[0], "MAX")), "min": int(_number(args[1], "MIN"))}
    if action in ("add_consumer", "cancel_consumer"):
        return {"queue": args[0]}
    return {}


def _send(ctx: Context, command: str, arguments: dict[str, Any], destination: str | None,
          timeout: float) -> list[dict[str, Any]]:  # fmt: skip
    control = ctx.connected_app().control
    names = control.check_destination(destination)
    if command == "revoke":  # stored durably first, then acknowledged by the workers
        replies = control.revoke(
            arguments["task_ids"],
            destination=names,
            terminate=bool(arguments.get("terminate")),
            signal=arguments.get("signal"),
            reply=True,
            timeout=timeout,
        )
    else:
        replies = control.broadcast(
            command, arguments=arguments, destination=names, reply=True, timeout=timeout
        )
    return list(replies or [])


def show(replies: list[dict[str, Any]], as_json: bool, expected: int | None = None) -> int:
    """Print replies as Celery does; return the exit code."""
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    if not merged:
        click.echo("Error: No nodes replied within time constraint", err=True)
        return EX_UNAVAILABLE
    failed = any(isinstance(r, dict) and "error" in r for r in merged.values())
    if as_json:
        click.echo(json.dumps(merged, indent=None, default=str))
    else:
        for node, reply in merged.items():
            status = "ERROR" if isinstance(reply, dict) and "error" in reply else "OK"
            click.echo(f"->  {node}: {status}")
            click.echo(_indent(reply))
        count = len(merged)
        click.echo(f"\n{count} {'node' if count == 1 else 'nodes'} online.")
    return 1 if failed else 0


def _indent(reply: Any) -> str:
    if isinstance(reply, dict) and set(reply) <= {"ok", "error"}:
        text = str(reply.get("ok") or reply.get("error"))
    elif reply in ([], {}):
        text = "- empty -"
    else:
        text = json.dumps(reply, indent=2, default=str)
    return "\n".join(f"        {line}" for line in text.splitlines())


def _common(fun: Any) -> Any:
    fun = click.option("-j", "--json", "as_json", is_flag=True, help="Print replies as JSON.")(fun)
    fun = click.option(
        "-t", "--timeout", type=float, default=1.0, show_default=True,
        help="Seconds to wait for replies (returns earlier when all live workers replied).",
    )(fun)  # fmt: skip
    return click.option(
        "-d", "--destination", help="Comma-separated node names (default: all live workers)."
    )(fun)


@cli.command(help=f"Inspect workers. ACTION is one of:\n\n{_usage(INSPECT)}")
@click.argument("action", type=click.Choice(list(INSPECT)))
@click.argument("args", nargs=-1)
@_common
@click.pass_obj
def inspect(ctx: Context, action: str, args: tuple[str, ...], destination: str | None,
            timeout: float, as_json: bool) -> None:  # fmt: skip
    arguments = inspect_arguments(action, args)
    replies = run_safely(_send, ctx, action, arguments, destination, timeout)
    sys.exit(show(replies, as_json))


@cli.command(help=f"Control workers. ACTION is one of:\n\n{_usage(CONTROL)}")
@click.argument("action", type=click.Choice(list(CONTROL)))
@click.argument("args", nargs=-1)
@_common
@click.pass_obj
def control(ctx: Context, action: str, args: tuple[str, ...], destination: str | None,
            timeout: float, as_json: bool) -> None:  # fmt: skip
    arguments = control_arguments(action, args)
    command = "revoke" if action == "terminate" else action
    if command == "revoke":
        from celeriac.worker.control import to_signum

        try:
            to_signum(arguments.get("signal") or "SIGTERM")
        except AttributeError:
            fail(f"unknown signal {arguments.get('signal')!r}; use e.g. SIGTERM or SIGKILL")
    replies = run_safely(_send, ctx, command, arguments, destination, timeout)
    sys.exit(show(replies, as_json))


@cli.command()
@_common
@click.pass_obj
def status(ctx: Context, destination: str | None, timeout: float, as_json: bool) -> None:
    """Ping the workers; print "N nodes online" (exit 69 when none replies)."""
    replies = run_safely(_send, ctx, "ping", {}, destination, timeout)
    sys.exit(show(replies, as_json))
