"""Real ``celeriac worker`` subprocesses that receive real signals."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.faultkit import fworker, tasks  # noqa: F401  (fixtures)
from tests.procs import WorkerProcess

HERE = Path(__file__).parent


@pytest.fixture
def worker_env(dsn: str, schema: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CELERIAC_TEST_DSN": dsn,
            "CELERIAC_SCHEMA": schema,
            "PYTHONPATH": str(HERE) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


@pytest.fixture
def proj_app(schema: str, dsn: str) -> Iterator[object]:
    """The tests' own handle on the e2e app, on the same schema as the workers."""
    os.environ["CELERIAC_SCHEMA"] = schema
    sys.path.insert(0, str(HERE))
    import proj  # type: ignore[import-not-found]

    proj.app.conf["broker_url"] = dsn
    proj.app.conf["celeriac_schema"] = schema
    proj.app._db = proj.app._result_db = None
    proj.app._broker = proj.app._backend = None
    yield proj.app
    proj.app.close()


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[object]:
    started: list[WorkerProcess] = []

    def start(*args: str, ready: bool = True) -> WorkerProcess:
        worker = WorkerProcess(list(args), worker_env, app="proj", cwd=HERE)
        started.append(worker)
        if ready:
            worker.wait_for_line(" ready.")
        return worker

    yield start
    for worker in started:
        worker.close()
