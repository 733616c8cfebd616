"""``celeriac call``: send a task by name and print its id."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from celeriac.cli.base import Context, cli, run_safely


def json_option(value: str | None, kind: type, label: str) -> Any:
    """Parse a JSON command-line argument; a clear usage error when it is not valid."""
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {value!r}", param_hint=label) from None
    if not isinstance(parsed, kind):
        want = "a JSON array, e.g. '[2, 3]'" if kind is list else "a JSON object, e.g. '{\"x\": 1}'"
        raise click.BadParameter(f"must be {want}, got {value!r}", param_hint=label)
    return parsed


def parse_when(value: str | None, label: str) -> dt.datetime | None:
    """An ISO-8601 time (naive means UTC)."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"not an ISO-8601 time: {value!r} (e.g. 2030-01-01T12:00:00+00:00)", param_hint=label
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@cli.command()
@click.argument("name")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--eta", help="Run at this ISO-8601 time.")
@click.option("--countdown", type=float, help="Run in this many seconds.")
@click.option("--expires", help="Expire at an ISO-8601 time or after this many seconds.")
@click.option("--serializer", default="json", show_default=True)
@click.option("--queue", help="Queue to send to (default: routed as the app says).")
@click.option("--priority", type=int, help="0-255, higher runs first.")
@click.pass_obj
def call(ctx: Context, name: str, args_json: str | None, kwargs_json: str | None,
         eta: str | None, countdown: float | None, expires: str | None, serializer: str,
         queue: str | None, priority: int | None) -> None:  # fmt: skip
    """Call a task by name; print its id."""
    args = json_option(args_json, list, "-a/--args")
    kwargs = json_option(kwargs_json, dict, "-k/--kwargs")
    when = parse_when(eta, "--eta")
    expiry: Any = None
    if expires is not None:
        try:
            expiry = float(expires)
        except ValueError:
            expiry = parse_when(expires, "--expires")
    options = {k: v for k, v in (("queue", queue), ("priority", priority)) if v is not None}
    result = run_safely(
        lambda: ctx.connected_app().send_task(
            name, args, kwargs, eta=when, countdown=countdown, expires=expiry,
            serializer=serializer, **options,
        )
    )  # fmt: skip
    click.echo(result.id)
