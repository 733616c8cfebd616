"""``celeriac migrate``: create or upgrade the schema."""

from __future__ import annotations

import click

from celeriac.cli.base import Context, cli, run_safely


@cli.command()
@click.pass_obj
def migrate(ctx: Context) -> None:
    """Create or upgrade celeriac's schema (also done automatically at first use)."""

    def work() -> None:
        from celeriac.db.migrate import migrate as apply
        from celeriac.db.migrate import migrations

        app = ctx.app
        for db in {id(d): d for d in (app.database, app.result_database)}.values():
            with db.connection() as conn:
                applied = apply(conn, db.schema)
            newest = migrations()[-1].version
            if applied:
                click.echo(
                    f"schema {db.schema}: applied {', '.join(map(str, applied))}; "
                    f"now at version {newest}"
                )
            else:
                click.echo(f"schema {db.schema}: up to date (version {newest})")

    run_safely(work)
