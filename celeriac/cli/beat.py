"""``celeriac beat``: publish periodic tasks (any number of beats may run; each tick is
published once)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from celeriac.cli.base import Context, cli, fail, setup_logging
from celeriac.exceptions import CeleriacError


@cli.command()
@click.option(
    "-l",
    "--loglevel",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
)
@click.option(
    "--max-interval", type=float, help="Longest sleep between schedule checks (default 5 s)."
)
@click.option("-f", "--logfile", help="Log file (default stderr).")
@click.option("--pidfile", help="Pid file.")
@click.option("-D", "--detach", is_flag=True, help="Run in the background.")
@click.option("-s", "--schedule", "schedule_file", hidden=True, help="Ignored: state is in the DB.")
@click.option("-S", "--scheduler", hidden=True, help="Ignored: the schedule is in the DB.")
@click.pass_obj
def beat(ctx: Context, loglevel: str, max_interval: float | None, logfile: str | None,
         pidfile: str | None, detach: bool, schedule_file: str | None,
         scheduler: str | None) -> None:  # fmt: skip
    """Start the beat periodic task scheduler."""
    from celeriac.beat import Beat
    from celeriac.cli.worker import _detach, _write_pidfile

    if detach:
        _detach(logfile)
    setup_logging(loglevel, logfile)
    if pidfile:
        _write_pidfile(pidfile)
    try:
        app = ctx.app
        service = Beat(app, max_interval=max_interval)

        def stop(signum: int, frame: Any) -> None:
            service.stop(wake=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        click.echo(f"celeriac beat v{_version()} is starting.", err=True)
        service.run()
    except CeleriacError as exc:
        fail(str(exc))
    finally:
        if pidfile and os.path.exists(pidfile):
            os.unlink(pidfile)
    sys.exit(0)


def _version() -> str:
    from celeriac import __version__

    return __version__
