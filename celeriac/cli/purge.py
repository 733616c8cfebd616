"""``celeriac purge``: delete waiting jobs (running ones are never touched)."""

from __future__ import annotations

import click

from celeriac.cli.base import Context, cli, run_safely


def _split(value: str | None) -> list[str]:
    return [q.strip() for q in (value or "").split(",") if q.strip()]


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
@click.option("-Q", "--queues", help="Comma-separated queues (default: every queue with jobs).")
@click.option("-X", "--exclude-queues", help="Comma-separated queues to leave alone.")
@click.pass_obj
def purge(ctx: Context, force: bool, queues: str | None, exclude_queues: str | None) -> None:
    """Erase all waiting tasks from the queues. There is no undo."""

    def work() -> None:
        app = ctx.connected_app()
        names = _split(queues) or sorted(app.broker.queue_lengths())
        names = [q for q in names if q not in set(_split(exclude_queues))]
        if not names:
            click.echo("No messages purged: no queue has waiting tasks.")
            return
        if not force:
            click.echo(
                f"WARNING: This will remove all tasks from queue(s): {', '.join(names)}.\n"
                "         There is no undo for this operation!"
            )
            if not click.confirm("Are you sure you want to delete all tasks?", default=False):
                raise SystemExit(1)
        count = app.control.purge(names)
        noun = "message" if count == 1 else "messages"
        click.echo(f"Purged {count} {noun} from {len(names)} known task queue(s).")

    run_safely(work)
