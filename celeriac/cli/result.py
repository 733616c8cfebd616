"""``celeriac result``: print a task's return value (or its traceback)."""

from __future__ import annotations

import json
import sys

import click

from celeriac import states
from celeriac.cli.base import Context, cli, fail, run_safely


@cli.command()
@click.argument("task_id")
@click.option("-t", "--task", help="Task name (accepted for Celery compatibility).")
@click.option("--traceback", is_flag=True, help="Print the traceback instead of the value.")
@click.option(
    "--wait", type=float, default=0.0, show_default=True, help="Seconds to wait for it to finish."
)
@click.pass_obj
def result(ctx: Context, task_id: str, task: str | None, traceback: bool, wait: float) -> None:
    """Print the result of a task (exit 1 when it failed or is not ready)."""

    def work() -> None:
        res = ctx.connected_app().AsyncResult(task_id)
        if wait and not res.ready():
            try:
                res.get(timeout=wait, propagate=False)
            except Exception:
                pass
        state = res.state
        if traceback:
            click.echo(res.traceback or "")
            return
        if state not in states.READY_STATES:
            fail(f"task {task_id} is {state} (not finished; unknown ids are PENDING too)")
        if state != states.SUCCESS:
            fail(f"task {task_id} {state}: {res.result!r}")
        value = res.result
        try:
            click.echo(json.dumps(value))
        except (TypeError, ValueError):
            click.echo(repr(value))

    run_safely(work)
    sys.exit(0)
