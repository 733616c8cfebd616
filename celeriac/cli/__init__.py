"""The ``celeriac`` command: ``celeriac -A proj worker``, ``celeriac migrate`` ...

Options before the subcommand (``-A/--app``, ``-b/--broker``, ``--result-backend``)
work as in Celery. Each subcommand lives in its own module and calls library code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from celeriac.cli import beat as _beat  # noqa: F401  (each import registers its command)
from celeriac.cli import call as _call  # noqa: F401
from celeriac.cli import events as _events  # noqa: F401
from celeriac.cli import inspect as _inspect  # noqa: F401
from celeriac.cli import migrate as _migrate  # noqa: F401
from celeriac.cli import multi as _multi  # noqa: F401
from celeriac.cli import purge as _purge  # noqa: F401
from celeriac.cli import result as _result  # noqa: F401
from celeriac.cli import schedule as _schedule  # noqa: F401
from celeriac.cli import worker as _worker  # noqa: F401
from celeriac.cli.base import cli


def main(argv: list[str] | None = None, obj: Any = None) -> None:
    """Entry point of the ``celeriac`` console script."""
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="celeriac", obj=obj)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


__all__ = ["cli", "main"]
