"""Least-privilege roles (docs/security.md): a worker role with the documented grants runs
tasks; a publisher-only role can publish but cannot read results, task bodies or purge."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from celeriac import Celery
from celeriac.exceptions import CeleriacError
from tests.faults.cluster import Cluster
from tests.faults.conftest import report

pytestmark = pytest.mark.faults

# the grants of docs/security.md, for a schema {s}, a worker role {w}, a publisher role {p}
WORKER_GRANTS = [
    "GRANT USAGE ON SCHEMA {s} TO {w}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {w}",
]
PUBLISHER_GRANTS = [
    "GRANT USAGE ON SCHEMA {s} TO {p}",
    "GRANT SELECT ON {s}.schema_version TO {p}",
    "GRANT INSERT ON {s}.jobs TO {p}",
    "GRANT SELECT (queue) ON {s}.jobs TO {p}",
    "GRANT INSERT, SELECT (group_id) ON {s}.chords TO {p}",
    "GRANT SELECT (task_id) ON {s}.results TO {p}",
]


@pytest.fixture
def roles(cluster: Cluster, fapp: Any, fschema: str) -> Iterator[dict[str, str]]:
    suffix = secrets.token_hex(3)
    made = {"worker": f"w_{suffix}", "publisher": f"p_{suffix}"}
    password = "pw-" + secrets.token_hex(8)
    names = {key: sql.Identifier(value) for key, value in made.items()}
    with cluster.connect() as conn:
        for ident in names.values():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password))
            )
        for grant in WORKER_GRANTS + PUBLISHER_GRANTS:
            conn.execute(
                sql.SQL(grant).format(
                    s=sql.Identifier(fschema), w=names["worker"], p=names["publisher"]
                )
            )
    yield {**made, "password": password}
    with cluster.connect() as conn:
        for ident in names.values():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_least_privilege_roles(
    cluster: Cluster, fapp: Any, fschema: str, start_worker: Any, roles: dict[str, str]
) -> None:
    worker_url = cluster.url(user=roles["worker"], password=roles["password"])
    # any session may LISTEN: with roles that must not see results, results are not
    # sent whole in notifications (celeriac_notify_results off, docs/security.md)
    env = {"FAULTS_DSN": worker_url, "FAULTS_NOTIFY_RESULTS": "0"}
    start_worker("-P", "threads", "-c", "2", "-n", "leastpriv@%h", env=env)
    eavesdrop = psycopg.connect(
        cluster.url(user=roles["publisher"], password=roles["password"], dbname="faults"),
        autocommit=True,
    )
    eavesdrop.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"celeriac_values.{fschema}")))
    other = fapp.tasks["faultproj.work"].delay(41)  # somebody else's task
    assert other.get(timeout=30) == 41
    assert list(eavesdrop.notifies(timeout=0.5)) == []  # no result reached the publisher
    eavesdrop.close()

    publisher = Celery(
        "pub",
        broker=cluster.url(user=roles["publisher"], password=roles["password"]),
        celeriac_schema=fschema,
    )
    try:
        sent = publisher.send_task("faultproj.work", (7,))
        assert fapp.AsyncResult(sent.id).get(timeout=30) == 7  # it ran
        # ids with a result are not queued again (publish once per task id), whoever sent
        publisher.send_task("faultproj.work", (7,), task_id=sent.id)
        publisher.send_task("faultproj.work", (8,), task_id=other.id)
        with fapp.database.connection() as conn:
            queued = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.jobs WHERE task_id = ANY(%s)").format(
                    sql.Identifier(fschema)
                ),
                ([sent.id, other.id],),
            ).fetchone()
        assert queued == (0,)
        denied = []
        for label, attempt in (
            ("read another task's result", lambda: publisher.AsyncResult(other.id).get(timeout=2)),
            ("read its own result", lambda: publisher.AsyncResult(sent.id).get(timeout=2)),
            ("purge", lambda: publisher.control.purge(["celery"])),
        ):
            with pytest.raises(CeleriacError, match="permission denied") as refused:
                attempt()
            denied.append(label)
            assert roles["password"] not in str(refused.value)
        with psycopg.connect(
            cluster.url(user=roles["publisher"], password=roles["password"], dbname="faults")
        ) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT body FROM {}.jobs").format(sql.Identifier(fschema)))
        denied.append("read task bodies")
    finally:
        publisher.close()
    report("least-privilege", published=1, ran=2, denied=len(denied))
