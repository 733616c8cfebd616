"""Beat against a real database: state in the DB, one tick per instant, no flood."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from celeriac.beat import Beat, delete_periodic_task, enable_periodic_task, save_periodic_task
from celeriac.schedules import crontab


def _jobs(app: Any) -> list[tuple[str, str]]:
    with app.database.connection() as conn:
        return conn.execute(
            sql.SQL("SELECT task_name, headers->>'periodic_task_name' FROM {}.jobs").format(
                sql.Identifier(app.database.schema)
            )
        ).fetchall()


def _state(app: Any, name: str) -> tuple[Any, int]:
    with app.database.connection() as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT last_run_at, total_run_count FROM {}.periodic_tasks WHERE name = %s"
            ).format(sql.Identifier(app.database.schema)),
            (name,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def _backdate(app: Any, name: str, seconds: int) -> None:
    with app.database.connection() as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.periodic_tasks SET last_run_at = now() - make_interval(secs => %s) "
                "WHERE name = %s"
            ).format(sql.Identifier(app.database.schema)),
            (seconds, name),
        )


def test_downtime_gives_one_tick_and_state_is_stored(app: Any) -> None:
    save_periodic_task(app, "every-second", "proj.add", 1.0, args=(1, 2))
    _backdate(app, "every-second", 3600)  # beat was down for an hour
    beat = Beat(app)
    with app.database.connection() as conn:
        wait = beat.tick(conn)
        assert beat.tick(conn) <= 1.0  # nothing more until the next second
    assert 0 <= wait <= 1.0
    assert _jobs(app) == [("proj.add", "every-second")]
    _, count = _state(app, "every-second")
    assert count == 1


def test_the_same_instant_is_published_once(app: Any) -> None:
    save_periodic_task(app, "e", "proj.add", 60.0)
    _backdate(app, "e", 61)
    first, second = Beat(app), Beat(app)
    with app.database.connection() as conn:
        entry = first.entries(conn)[0]
    due = entry.schedule.due_at(entry.last_run_at, entry.last_run_at.replace(year=2100))
    assert due is not None
    assert first.apply(entry, due) is True
    assert second.apply(entry, due) is False  # a beat that read the same state
    assert len(_jobs(app)) == 1


def test_config_entries_sync_and_runtime_changes(app: Any) -> None:
    app.conf["beat_schedule"] = {
        "cron": {"task": "proj.add", "schedule": crontab(minute="*/5"), "args": (1, 1)},
    }
    configured: list[str] = []

    @app.on_after_configure.connect
    def setup(sender: Any, **kwargs: Any) -> None:
        configured.append("yes")
        sender.add_periodic_task(30.0, app.signature("proj.add", (2, 2)), name="added")

    beat = Beat(app)
    app.finalize()
    beat.sync_config()
    assert configured == ["yes"]
    with app.database.connection() as conn:
        assert [e.name for e in beat.entries(conn)] == ["added", "cron"]
    assert enable_periodic_task(app, "cron", False)
    save_periodic_task(app, "dyn", "proj.add", 5)
    with app.database.connection() as conn:
        assert [e.name for e in beat.entries(conn)] == ["added", "dyn"]
    assert delete_periodic_task(app, "dyn")
    assert not delete_periodic_task(app, "dyn")
    app.conf["beat_schedule"] = {}
    beat.sync_config()  # entries removed from the config go; stored ones would stay
    with app.database.connection() as conn:
        assert [e.name for e in beat.entries(conn)] == []


def test_catch_up_when_asked(app: Any) -> None:
    app.conf["beat_catch_up"] = True
    save_periodic_task(app, "every-second", "proj.add", 1.0)
    _backdate(app, "every-second", 5)  # five instants were missed
    beat = Beat(app)
    with app.database.connection() as conn:
        for _ in range(10):
            if beat.tick(conn) > 0:
                break
    assert len(_jobs(app)) == 5
    assert _state(app, "every-second")[1] == 5
