"""The command group, app loading (``-A proj`` as Celery resolves it) and logging set-up."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from celeriac.exceptions import CeleriacError


class Context:
    """What every subcommand gets: the app, loaded lazily."""

    def __init__(
        self, app_path: str | None, broker: str | None, result_backend: str | None, app: Any = None
    ) -> None:
        self.app_path = app_path
        self.broker = broker
        self.result_backend = result_backend
        self._app = app

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = find_app(self.app_path) if self.app_path else _default_app()
            if self.broker:
                self._app.conf["broker_url"] = self.broker
            if self.result_backend:
                self._app.conf["result_backend"] = self.result_backend
        return self._app

    def connected_app(self) -> Any:
        """The app, after checking quickly (5 s) that its database answers; raises
        OperationalError (password masked) instead of waiting for the pool's timeout."""
        app = self.app
        app.database.connect(connect_timeout=5).close()
        return app


def _default_app() -> Any:
    from celeriac import Celery

    return Celery("celeriac")


def find_app(path: str) -> Any:
    """Celery's ``find_app``: ``proj:attr``; else ``app``, ``celery``, ``proj.celery``,
    or any Celery instance in the module."""
    from celeriac.app import Celery

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = path.partition(":")
    module = _maybe_import(module_name)
    if module is None and "." in module_name and not attr:
        module_name, _, attr = module_name.rpartition(".")  # -A proj.tasks.app
        module = _maybe_import(module_name)
    if module is None:
        raise click.UsageError(f"cannot import {module_name!r} given with -A {path}")
    if attr:
        try:
            found = getattr(module, attr)
        except AttributeError:
            raise click.UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
        return found() if callable(found) and not isinstance(found, Celery) else found
    found = _app_in(module) or _app_in(_maybe_import(f"{module_name}.celery"))
    if found is None:
        found = next((v for v in vars(module).values() if isinstance(v, Celery)), None)
    if found is not None:
        return found
    raise click.UsageError(
        f"no celeriac app found in module {module_name!r}: define "
        f"app = Celery(...) there or pass -A {module_name}:name"
    )


def _maybe_import(name: str) -> Any:
    """Import ``name``; None when it (or a parent package) does not exist.

    An import error raised *inside* the module (a missing dependency of the project)
    is not hidden: it propagates with its own message.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parts = name.split(".")
        if exc.name in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            return None
        raise


def _app_in(module: Any) -> Any:
    from celeriac.app import Celery

    for name in ("app", "celery"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celery):
            return candidate
    return None


def setup_logging(level: str, logfile: str | None = None) -> None:
    """The CLI configures logging; the library never adds handlers."""
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(
        logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A", "--app", "app_path", envvar="CELERIAC_APP", help="The app: module or module:attr."
)
@click.option("-b", "--broker", envvar="CELERIAC_BROKER_URL", help="PostgreSQL URL.")
@click.option(
    "--result-backend", envvar="CELERIAC_RESULT_BACKEND", help="PostgreSQL URL for results."
)
@click.version_option(package_name="celeriac")
@click.pass_context
def cli(
    ctx: click.Context, app_path: str | None, broker: str | None, result_backend: str | None
) -> None:
    """celeriac: Celery's API and CLI with PostgreSQL as the only server."""
    ctx.obj = Context(app_path, broker, result_backend, app=ctx.obj)


def fail(message: str, code: int = 1) -> None:
    """Print a clear error and exit non-zero."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run_safely(fun: Any, *args: Any, **kwargs: Any) -> Any:
    """Run library code; celeriac errors become a message and exit 1, not a traceback."""
    try:
        return fun(*args, **kwargs)
    except CeleriacError as exc:
        fail(str(exc))
    return None
