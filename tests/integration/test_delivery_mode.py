"""delivery_mode "transient": a publish that commits asynchronously (synchronous_commit
off for its own transaction only); "persistent" (the default) commits durably."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from celeriac.publish import MessageBuilder, is_durable


def test_delivery_modes_are_celerys() -> None:
    assert is_durable(None) and is_durable(2) and is_durable("persistent")
    assert not is_durable(1) and not is_durable("transient")
    with pytest.raises(ValueError, match="delivery_mode"):
        is_durable("fast")


def _setting_after(app: Any, dsn: str, query: str, params: dict[str, Any]) -> str:
    """synchronous_commit in the transaction right after one publish query ran in it."""
    with psycopg.connect(dsn) as conn:
        conn.execute(app.broker._q(query), params)
        row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
        conn.rollback()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("durable", [True, False])
def test_each_publish_query_turns_off_synchronous_commit_only_when_transient(
    app: Any, dsn: str, durable: bool
) -> None:
    noop = app.task(name="t.noop")(lambda *args: None)
    broker = app.broker
    messages = [app.build_message("t.noop", [i], {}, options={}) for i in range(2)]
    batch = MessageBuilder(app).build_batch("t.noop", [[1], [2]], options={}, task_type=noop)
    assert batch is not None
    expected = "on" if durable else "off"
    one = {**broker._one_params(messages[0]), "durable": durable, "sort_key": None}
    assert _setting_after(app, dsn, "publish_one", one) == expected
    many = {**broker._publish_params(messages), "durable": durable, "sort_key": None}
    many.update({"h_group_ids": [], "h_task_ids": [], "h_content_types": [], "h_bodies": []})
    assert _setting_after(app, dsn, "publish", many) == expected
    bulk = {**batch.params(), "channel": broker.channel, "durable": durable}
    assert _setting_after(app, dsn, "publish_batch", bulk) == expected
    copied = {"channel": broker.channel, "queue": batch.queue, "durable": durable}
    assert _setting_after(app, dsn, "publish_copy_notify", copied) == expected


def test_transient_publishes_are_queued_like_persistent_ones(app: Any) -> None:
    noop = app.task(name="t.noop")(lambda *args: None)
    broker, seen = app.broker, []
    write = broker._write

    def recording(name: str, params: dict[str, Any], conn: Any, durable: bool) -> None:
        seen.append(durable)
        write(name, params, conn, durable)

    broker._write = recording
    copy_batch = broker._copy_batch

    def copying(batch: Any, durable: bool) -> None:
        seen.append(durable)
        copy_batch(batch, durable)

    broker._copy_batch = copying
    noop.delay(0)
    one = noop.apply_async((1,), delivery_mode="transient")
    many = noop.delay_many([(2,), (3,)], delivery_mode=1)
    app.conf.task_default_delivery_mode = "transient"
    default = noop.delay(4)
    with app.database.connection() as conn:
        rows = conn.execute(
            f'SELECT task_id FROM "{app.database.schema}".jobs ORDER BY id'
        ).fetchall()
    assert [r[0] for r in rows][1:] == [one.id, *(r.id for r in many), default.id]
    assert seen == [True, False, False, False]
