"""Security: no pickle unless accepted; passwords in database URLs never leak into logs,
banners, errors, inspect output or stored metadata."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from celeriac.config import mask_url
from tests.faults.cluster import Cluster
from tests.faults.conftest import HERE, report, runs, wait_for_outcomes

pytestmark = pytest.mark.faults


class Evil:
    """Unpickling this runs a command: the proof that a payload was deserialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def test_pickle_to_a_json_only_worker_is_refused_never_loaded(
    cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, tmp_path: Path
) -> None:
    proof = tmp_path / "unpickled"
    worker = start_worker("-P", "threads", "-c", "1", "-n", "json-only@%h")
    message = fapp.build_message("faultproj.work", (1,), {}, options={}, task_id="pickled-1")
    message = dataclasses.replace(
        message,
        body=pickle.dumps([[Evil(proof)], {}, {}]),
        content_type="application/x-python-serialize",
    )
    fapp.publish([message])
    line = worker.wait_for_line("ContentDisallowed", timeout=30)
    got = wait_for_outcomes(cluster, fschema, ["pickled-1"], 30, frozenset({"FAILURE"}))
    with cluster.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT state, error FROM {}.jobs WHERE task_id = 'pickled-1'").format(
                sql.Identifier(fschema)
            )
        ).fetchone()
    report("pickle-refused", sent=1, ran=0, outcomes_recorded=len(got), job_state=row and row[0])
    assert got == {"pickled-1": "FAILURE"}
    assert row is not None and row[0] == "dead" and "ContentDisallowed" in row[1]
    assert "application/x-python-serialize" in worker.lines[line]
    assert not proof.exists(), "the pickle payload was deserialized"
    assert worker.proc.poll() is None


def _cli(cluster: Cluster, url: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELERIAC_SCHEMA": schema, "PYTHONPATH": str(HERE)}
    env.pop("CELERIAC_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "faultproj", "-b", url, *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stored_text(cluster: Cluster, schema: str) -> str:
    """Every row of every table of the schema, as text."""
    texts: list[str] = []
    with cluster.connect() as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL(
                    "SELECT t::text, encode(convert_to(t::text, 'UTF8'), 'escape') FROM {}.{} AS t"
                ).format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall()
            texts += [text for row in rows for text in row]
    return "\n".join(texts)


def test_passwords_never_leak(
    cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, runlog: Path
) -> None:
    secret = cluster.password
    url = cluster.url()
    # the URL on the command line (argv), as operators often do
    worker = start_worker("-P", "threads", "-c", "1", "-n", "secret@%h", pre=("-b", url))
    assert fapp.tasks["faultproj.whoami"].delay().get(timeout=30)["hostname"].startswith("secret@")
    outputs = {"worker log": worker.log}
    for args in (
        ("inspect", "stats"),
        ("inspect", "conf"),
        ("inspect", "active"),
        ("status",),
        ("inspect", "registered"),
        ("result", runs(runlog).most_common(1)[0][0]),
    ):
        done = _cli(cluster, url, fschema, *args)
        outputs[" ".join(args)] = done.stdout + done.stderr
    # errors: a server that is not there, a wrong password, a malformed URL
    wrong_port = url.replace(f":{cluster.port}/", ":1/")
    wrong_password = cluster.url(password=secret + "x")
    for label, bad in (
        ("refused", wrong_port),
        ("auth", wrong_password),
        ("scheme", url.replace("postgresql://", "mysql://")),
    ):
        done = _cli(cluster, bad, fschema, "inspect", "ping")
        outputs[f"error {label}"] = done.stdout + done.stderr
        assert done.returncode != 0
    # query-string and keyword forms of the password
    outputs["mask query"] = mask_url(url.replace(f":{secret}@", "@") + f"?password={secret}")
    outputs["stored"] = _stored_text(cluster, fschema)
    leaks = sorted(label for label, text in outputs.items() if secret in text)
    report("password-leaks", places_checked=len(outputs), leaks=len(leaks))
    assert not leaks, f"password found in: {leaks}"
    assert "secret@" in outputs["worker log"] and "**" in outputs["worker log"]  # banner masked
    assert "Error" in outputs["error refused"]
