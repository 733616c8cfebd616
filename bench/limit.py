"""What PostgreSQL itself allows here: pgbench running the minimal SQL of a job.

Two scripts (bench/limit/*.sql): one job as three single-row commits, and 100 jobs as
three batched commits. Jobs/s = pgbench transactions/s × jobs per script. The tables live
in the benchmark's own database, recreated before each run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent / "limit"
SCRIPTS = {"single": 1, "batched": 100}


def available() -> bool:
    return shutil.which("pgbench") is not None


def run(dsn: str, script: str, seconds: int, clients: int = 2) -> dict[str, Any]:
    """One pgbench run of ``script``; jobs/s."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((HERE / "schema.sql").read_text())
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "-f",
            str(HERE / f"{script}.sql"),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"cannot read pgbench output:\n{out}")
    tps = float(match.group(1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS jobs, results")
    return {"rate": tps * SCRIPTS[script], "tps": tps}
