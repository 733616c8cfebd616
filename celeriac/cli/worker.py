"""``celeriac worker``: Celery's worker options."""

from __future__ import annotations

import os
import sys

import click

from celeriac.cli.base import Context, cli, fail, setup_logging
from celeriac.exceptions import CeleriacError


def expand_path(template: str | None, hostname: str, index: int = 0) -> str | None:
    """%n name part, %h full node name, %d domain, %i / %I pool index (Celery's vars)."""
    if not template:
        return None
    name, _, host = hostname.partition("@")
    return (
        template.replace("%p", hostname)
        .replace("%h", hostname)
        .replace("%n", name)
        .replace("%d", host.partition(".")[2])
        .replace("%i", str(index))
        .replace("%I", f"-{index}" if index else "")
    )


@cli.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "-l",
    "--loglevel",
    default="WARNING",
    show_default=True,
    type=click.Choice(
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"], case_sensitive=False
    ),
)
@click.option("-c", "--concurrency", type=int, help="Slots; default: number of CPUs.")
@click.option("-n", "--hostname", help="Node name (%h host, %n short host, %d domain).")
@click.option("-Q", "--queues", help="Comma-separated queues to consume.")
@click.option(
    "-P",
    "--pool",
    type=click.Choice(["prefork", "processes", "threads", "solo"]),
    help="Execution pool (default prefork).",
)
@click.option("--time-limit", type=float, help="Hard time limit (s).")
@click.option("--soft-time-limit", type=float, help="Soft time limit (s).")
@click.option("--max-tasks-per-child", type=int)
@click.option("--max-memory-per-child", type=int, help="KiB of resident memory.")
@click.option("--prefetch-multiplier", type=int)
@click.option("-f", "--logfile", help="Log file (%n %h %i %I expanded).")
@click.option("--pidfile", help="Pid file (%n %h %i %I expanded).")
@click.option("-D", "--detach", is_flag=True, help="Run in the background.")
@click.option("-I", "--include", help="Extra modules to import, comma-separated.")
@click.option("-B", "--beat", is_flag=True, help="Also run beat (periodic tasks).")
@click.option("--autoscale", help="MAX,MIN: grow/shrink the prefork pool with the load.")
@click.option("-E", "--task-events", is_flag=True, help="Record task events in the database.")
@click.pass_obj
def worker(
    ctx: Context,
    loglevel: str,
    concurrency: int | None,
    hostname: str | None,
    queues: str | None,
    pool: str | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    prefetch_multiplier: int | None,
    logfile: str | None,
    pidfile: str | None,
    detach: bool,
    include: str | None,
    beat: bool,
    autoscale: str | None,
    task_events: bool,
) -> None:
    """Start a worker node."""
    from celeriac.worker.worker import Worker, expand_hostname

    node = expand_hostname(hostname)
    # name this worker's sessions (and its children's) in pg_stat_activity
    os.environ.setdefault("PGAPPNAME", f"celeriac worker {node}"[:63])
    logfile = expand_path(logfile, node)
    pidfile = expand_path(pidfile, node)
    if pidfile:
        _check_pidfile(pidfile)  # before detaching, so the refusal reaches the terminal
    if detach:
        _detach(logfile)
    setup_logging(loglevel, logfile)
    if pidfile:
        _write_pidfile(pidfile)
    try:
        app = ctx.app
        if task_events:
            app.conf["worker_send_task_events"] = True
        if include:
            app.conf["include"] = (*app.conf.get("include", ()), *include.split(","))
        node_worker = Worker(
            app,
            hostname=node,
            concurrency=concurrency,
            pool=pool,
            queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            prefetch_multiplier=prefetch_multiplier,
            argv=sys.argv,
            autoscale=_autoscale(autoscale),
        )
        if beat:
            from celeriac.beat import start_embedded

            start_embedded(app)
        code = node_worker.start()
    except CeleriacError as exc:
        fail(str(exc))
        return
    finally:
        if pidfile and os.path.exists(pidfile):
            os.unlink(pidfile)
    sys.exit(code)


def _autoscale(value: str | None) -> tuple[int, int] | None:
    from celeriac.worker.autoscale import parse_autoscale

    return parse_autoscale(value) if value else None


def _check_pidfile(path: str) -> None:
    """Refuse to start when the pidfile names another live process."""
    try:
        with open(path) as handle:
            pid = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return
    if pid and pid != os.getpid() and _alive(pid):  # own pid: restarted in place (HUP)
        fail(f"pidfile {path} names a running process ({pid}); is the worker already running?")


def _write_pidfile(path: str) -> None:
    _check_pidfile(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _detach(logfile: str | None) -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if logfile:
        out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
    else:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
