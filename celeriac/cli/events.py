"""``celeriac events``: print task events recorded by workers started with ``-E``."""

from __future__ import annotations

import json
from typing import Any

import click
from psycopg import sql

from celeriac.cli.base import Context, cli, run_safely
from celeriac.db.queries import query


def format_event(event: dict[str, Any]) -> str:
    """One line, like ``celery events --dump``."""
    fields = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in event["fields"].items())
    when = event["timestamp"].isoformat(timespec="milliseconds")
    return f"{when} [{event['hostname']}] {event['type']} uuid={event['uuid']} {fields}".rstrip()


@cli.command()
@click.option("-d", "--dump", is_flag=True, help="Print events (the only mode; Celery's flag).")
@click.option("-n", "--last", type=int, default=20, show_default=True, help="Events shown first.")
@click.option("--follow/--no-follow", default=True, help="Keep printing new events.")
@click.pass_obj
def events(ctx: Context, dump: bool, last: int, follow: bool) -> None:
    """Show task events (workers need -E); follows new ones until interrupted."""

    def work() -> None:
        from celeriac.events import events_channel, read_events

        app = ctx.connected_app()
        app.ensure_schema()
        db = app.database
        conn = db.connect()
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(events_channel(db.schema))))
            newest = conn.execute(query("last_event_id", db.schema)).fetchone()
            after = max(0, int(newest[0] if newest else 0) - last)
            while True:
                for event in read_events(app, after):
                    click.echo(format_event(event))
                    after = event["id"]
                if not follow:
                    return
                for _ in conn.notifies(timeout=5.0, stop_after=1):
                    pass
        except KeyboardInterrupt:
            pass
        finally:
            conn.close()

    run_safely(work)
