"""Schedule math: crontab fields and rules (Celery's), intervals, no flood after downtime."""

from __future__ import annotations

import datetime as dt

import pytest

from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import crontab, from_json, maybe_schedule, parse_field, schedule

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_field_syntax() -> None:
    assert parse_field("*/15", 0, 59) == {0, 15, 30, 45}
    assert parse_field("1-5", 0, 6) == {1, 2, 3, 4, 5}
    assert parse_field("1-10/3", 0, 59) == {1, 4, 7, 10}
    assert parse_field("5/20", 0, 59) == {5, 25, 45}
    assert parse_field("1,3, 5", 0, 59) == {1, 3, 5}
    assert parse_field([1, "2-3"], 0, 59) == {1, 2, 3}
    assert crontab(day_of_week="mon-fri").day_of_week == {1, 2, 3, 4, 5}
    assert crontab(day_of_week="fri-mon").day_of_week == {5, 6, 0, 1}
    assert crontab(day_of_week="sunday,7").day_of_week == {0}
    assert crontab(month_of_year="jan,mar-apr").month_of_year == {1, 3, 4}


@pytest.mark.parametrize(
    "kwargs", [{"minute": "60"}, {"hour": "*/0"}, {"day_of_week": "funday"}, {"minute": "a-b-c"}]
)
def test_bad_fields_are_clear_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured, match="crontab"):
        crontab(**kwargs)


def test_next_after_basics() -> None:
    every_15 = crontab(minute="*/15")
    assert every_15.next_after(at(2030, 1, 1, 10, 7, 30)) == at(2030, 1, 1, 10, 15)
    assert every_15.next_after(at(2030, 1, 1, 10, 15)) == at(2030, 1, 1, 10, 30)
    assert every_15.next_after(at(2030, 12, 31, 23, 50)) == at(2031, 1, 1, 0, 0)
    daily = crontab(minute=30, hour=7)
    assert daily.next_after(at(2030, 1, 31, 8, 0)) == at(2030, 2, 1, 7, 30)


def test_day_of_week_and_day_of_month_are_anded() -> None:
    friday_13th = crontab(minute=0, hour=0, day_of_week="fri", day_of_month=13)
    # 2030-09-13 is the first Friday the 13th after 2030-01-01 (Unix cron would OR them)
    assert friday_13th.next_after(at(2030, 1, 1)) == at(2030, 9, 13)
    weekdays = crontab(minute=0, hour=9, day_of_week="mon-fri")
    assert weekdays.next_after(at(2030, 1, 4, 10)) == at(2030, 1, 7, 9)  # Fri → Mon


def test_leap_day_and_months() -> None:
    leap = crontab(minute=0, hour=0, day_of_month=29, month_of_year=2)
    assert leap.next_after(at(2030, 1, 1)) == at(2032, 2, 29)
    thirty_first = crontab(minute=0, hour=12, day_of_month=31)
    assert thirty_first.next_after(at(2030, 4, 1)) == at(2030, 5, 31, 12)


def test_previous_and_due_at_give_one_tick_after_downtime() -> None:
    hourly = crontab(minute=0)
    last = at(2030, 1, 1, 0, 0)
    now = at(2030, 1, 3, 5, 17)  # two days down: one tick for the latest instant only
    assert hourly.due_at(last, now) == at(2030, 1, 3, 5, 0)
    assert hourly.due_at(at(2030, 1, 3, 5, 0), now) is None
    every = schedule(dt.timedelta(seconds=10))
    assert every.due_at(at(2030, 1, 1), at(2030, 1, 1, 0, 0, 9)) is None
    assert every.due_at(at(2030, 1, 1), at(2030, 1, 1, 1, 0, 5)) == at(2030, 1, 1, 1, 0, 0)
    assert every.next_after(at(2030, 1, 1)) == at(2030, 1, 1, 0, 0, 10)


def test_timezone_applies_to_crontab() -> None:
    morning = crontab(minute=0, hour=9, tz="Europe/Paris")
    assert morning.next_after(at(2030, 1, 1)) == at(2030, 1, 1, 8, 0)  # CET = UTC+1
    assert morning.next_after(at(2030, 7, 1)) == at(2030, 7, 1, 7, 0)  # CEST = UTC+2


def test_json_round_trip_and_maybe_schedule() -> None:
    cron = crontab(minute="*/5", day_of_week="mon-fri")
    assert from_json(cron.to_json()) == cron
    assert from_json(maybe_schedule(30).to_json()) == schedule(30)
    assert maybe_schedule(dt.timedelta(minutes=1)) == schedule(60)
    with pytest.raises(ImproperlyConfigured):
        maybe_schedule("often")
    state = schedule(60).is_due(dt.datetime.now(UTC) - dt.timedelta(seconds=61))
    assert state.is_due and 0 < state.next <= 60
