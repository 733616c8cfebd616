"""``celeriac schedule``: list and change the periodic tasks stored in the database;
running beats pick changes up at once (no restart)."""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli.base import Context, cli, fail, run_safely
from celeriac.cli.call import json_option
from celeriac.db.queries import query
from celeriac.exceptions import CeleriacError


def parse_cron(text: str) -> Any:
    """``'*/15 9-17 * * mon-fri'`` (minute hour day-of-month month day-of-week)."""
    from celeriac.schedules import crontab

    fields = text.split()
    if len(fields) != 5:
        raise click.BadParameter(
            f"{text!r} is not 5 fields: minute hour day_of_month month day_of_week",
            param_hint="--cron",
        )
    minute, hour, dom, month, dow = fields
    try:
        return crontab(minute, hour, day_of_week=dow, day_of_month=dom, month_of_year=month)
    except CeleriacError as exc:
        raise click.BadParameter(str(exc), param_hint="--cron") from None


@cli.group()
def schedule() -> None:
    """Periodic tasks stored in the database (what beat runs)."""


@schedule.command("list")
@click.option("-j", "--json", "as_json", is_flag=True)
@click.pass_obj
def list_(ctx: Context, as_json: bool) -> None:
    """Show entries with their state (last run, total runs)."""

    def work() -> None:
        app = ctx.connected_app()
        app.ensure_schema()
        with app.database.connection() as conn:
            rows = conn.execute(query("list_periodic_tasks", app.database.schema)).fetchall()
        keys = ("name", "task", "schedule", "args", "kwargs", "enabled", "source",
                "last_run_at", "total_run_count")  # fmt: skip
        entries = [dict(zip(keys, row, strict=True)) for row in rows]
        if as_json:
            click.echo(json.dumps(entries, default=str))
            return
        for e in entries:
            state = "enabled" if e["enabled"] else "disabled"
            click.echo(
                f"{e['name']}: {e['task']} {json.dumps(e['schedule'])} ({state}, {e['source']}) "
                f"runs={e['total_run_count']} last={e['last_run_at']}"
            )

    run_safely(work)


@schedule.command()
@click.argument("name")
@click.argument("task")
@click.option("--every", type=float, help="Interval in seconds.")
@click.option("--cron", help="Crontab: 'minute hour day_of_month month day_of_week'.")
@click.option("-a", "--args", "args_json", help="JSON array.")
@click.option("-k", "--kwargs", "kwargs_json", help="JSON object.")
@click.option("--queue")
@click.pass_obj
def add(ctx: Context, name: str, task: str, every: float | None, cron: str | None,
        args_json: str | None, kwargs_json: str | None, queue: str | None) -> None:  # fmt: skip
    """Add or change an entry (keeps its run history)."""
    from celeriac.beat import save_periodic_task

    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every SECONDS or --cron 'm h dom mon dow'")
    when = parse_cron(cron) if cron else every
    args = json_option(args_json, list, "-a/--args")
    kwargs = json_option(kwargs_json, dict, "-k/--kwargs")
    options = {"queue": queue} if queue else {}
    run_safely(
        lambda: save_periodic_task(ctx.connected_app(), name, task, when, args, kwargs, options)
    )
    click.echo(f"saved {name}")


def _toggle(ctx: Context, name: str, enabled: bool) -> None:
    from celeriac.beat import enable_periodic_task

    if not run_safely(lambda: enable_periodic_task(ctx.connected_app(), name, enabled)):
        fail(f"no periodic task named {name!r} (see `celeriac schedule list`)")
    click.echo(f"{'enabled' if enabled else 'disabled'} {name}")


@schedule.command()
@click.argument("name")
@click.pass_obj
def enable(ctx: Context, name: str) -> None:
    """Enable an entry."""
    _toggle(ctx, name, True)


@schedule.command()
@click.argument("name")
@click.pass_obj
def disable(ctx: Context, name: str) -> None:
    """Disable an entry (its state is kept)."""
    _toggle(ctx, name, False)


@schedule.command()
@click.argument("name")
@click.pass_obj
def remove(ctx: Context, name: str) -> None:
    """Delete an entry."""
    from celeriac.beat import delete_periodic_task

    if not run_safely(lambda: delete_periodic_task(ctx.connected_app(), name)):
        fail(f"no periodic task named {name!r} (see `celeriac schedule list`)")
    click.echo(f"removed {name}")
