"""Schedules for periodic tasks: ``schedule`` (an interval) and ``crontab``, as in Celery.

Beat asks a schedule two questions with explicit times, so every beat process computes
the same instants: ``due_at(last_run_at, now)`` — the latest due instant after the last
run and not after now (one instant however many were missed: no flood after downtime) —
and ``next_after(when)``. ``crontab`` follows Celery: Sunday is 0, names like ``mon-fri``
and ``jan``, ``*/15``, ranges with steps, and **day_of_week AND day_of_month** must both
match (Unix cron ORs them). Crontab fields are read in the app's timezone.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from celeriac.exceptions import ImproperlyConfigured

UTC = dt.UTC
DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
MONTH_NAMES = {
    name: index + 1
    for index, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
SEARCH_DAYS = 366 * 29  # a weekday on Feb 29 recurs within 28 years


class schedstate(NamedTuple):  # Celery's name
    is_due: bool
    next: float


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


class BaseSchedule:
    """What beat needs from a schedule."""

    def due_at(self, last_run_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
        raise NotImplementedError

    def next_after(self, when: dt.datetime) -> dt.datetime:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        """Celery's question: due now? and seconds until the next check."""
        now = _now()
        due = self.due_at(_aware(last_run_at), now)
        following = self.next_after(due or _aware(last_run_at))
        return schedstate(due is not None, max(0.0, (following - now).total_seconds()))

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        return self.next_after(_aware(last_run_at)) - _now()


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class schedule(BaseSchedule):  # Celery's name
    """Run every ``run_every`` (seconds or timedelta)."""

    def __init__(self, run_every: float | dt.timedelta, relative: bool = False, **kw: Any) -> None:
        self.run_every = (
            run_every if isinstance(run_every, dt.timedelta) else dt.timedelta(seconds=run_every)
        )
        if self.run_every.total_seconds() <= 0:
            raise ImproperlyConfigured(f"schedule interval must be positive, got {run_every!r}")
        self.relative = relative

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    def due_at(self, last_run_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
        periods = math.floor((now - last_run_at).total_seconds() / self.seconds)
        return last_run_at + periods * self.run_every if periods >= 1 else None

    def next_after(self, when: dt.datetime) -> dt.datetime:
        return when + self.run_every

    def to_json(self) -> dict[str, Any]:
        return {"type": "interval", "every": self.seconds}

    def __repr__(self) -> str:
        return f"<freq: {self.run_every}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.run_every == self.run_every

    __hash__ = None  # type: ignore[assignment]


def parse_field(value: Any, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """A crontab field → the set of values it matches (Celery's ``crontab_parser``)."""
    if isinstance(value, int):
        values = {value}
    elif isinstance(value, str):
        values = set()
        for part in value.replace(" ", "").lower().split(","):
            values |= _parse_part(part, low, high, names or {})
    elif isinstance(value, Iterable):
        values = set()
        for item in value:
            values |= parse_field(item, low, high, names)
    else:
        raise ImproperlyConfigured(f"bad crontab field {value!r}")
    if not values or min(values) < low or max(values) > high:
        raise ImproperlyConfigured(f"crontab field {value!r} is outside {low}-{high}")
    return values


_PART = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def _parse_part(part: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    match = _PART.match(part)
    if not match:
        raise ImproperlyConfigured(f"bad crontab expression {part!r}")
    span, step = match.group(1), int(match.group(2) or 1)
    if step < 1:
        raise ImproperlyConfigured(f"bad crontab step in {part!r}")
    if span == "*":
        first, last = low, high
    else:
        start, _, end = span.partition("-")
        first = _value(start, names)
        last = _value(end, names) if end else (high if match.group(2) else first)
    if last < first:  # a range that wraps, e.g. fri-mon or 22-2
        return set(range(first, high + 1, step)) | set(range(low, last + 1, step))
    return set(range(first, last + 1, step))


def _value(text: str, names: dict[str, int]) -> int:
    if text.isdigit():
        return int(text)
    key = text[:3]
    if key in names:
        return names[key]
    raise ImproperlyConfigured(f"bad crontab value {text!r}")


class crontab(BaseSchedule):  # Celery's name
    """Celery's ``crontab(minute, hour, day_of_week, day_of_month, month_of_year)``."""

    def __init__(
        self,
        minute: Any = "*",
        hour: Any = "*",
        day_of_week: Any = "*",
        day_of_month: Any = "*",
        month_of_year: Any = "*",
        tz: str | dt.tzinfo | None = None,
        **kw: Any,
    ) -> None:
        self._orig = (minute, hour, day_of_week, day_of_month, month_of_year)
        self.minute = parse_field(minute, 0, 59)
        self.hour = parse_field(hour, 0, 23)
        dow = parse_field(day_of_week, 0, 7, DAY_NAMES)
        self.day_of_week = {d % 7 for d in dow}  # 7 is Sunday too
        self.day_of_month = parse_field(day_of_month, 1, 31)
        self.month_of_year = parse_field(month_of_year, 1, 12, MONTH_NAMES)
        self.tz: dt.tzinfo = ZoneInfo(tz) if isinstance(tz, str) else (tz or UTC)
        self._hours = sorted(self.hour)
        self._minutes = sorted(self.minute)

    def _day_matches(self, day: dt.date) -> bool:
        return (
            day.month in self.month_of_year
            and day.day in self.day_of_month
            and (day.weekday() + 1) % 7 in self.day_of_week
        )

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``when``."""
        local = _aware(when).astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        start = local + dt.timedelta(minutes=1)
        for offset in range(SEARCH_DAYS):
            day = start.date() + dt.timedelta(days=offset)
            if not self._day_matches(day):
                continue
            floor = (start.hour, start.minute) if offset == 0 else (0, 0)
            for hour in self._hours:
                for minute in self._minutes:
                    if (hour, minute) >= floor:
                        return self._aware(day, hour, minute)
        raise ImproperlyConfigured(f"{self!r} never matches")

    def previous_at_or_before(self, when: dt.datetime) -> dt.datetime | None:
        """The last matching minute at or before ``when``."""
        local = _aware(when).astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        for offset in range(SEARCH_DAYS):
            day = local.date() - dt.timedelta(days=offset)
            if not self._day_matches(day):
                continue
            ceiling = (local.hour, local.minute) if offset == 0 else (23, 59)
            for hour in reversed(self._hours):
                for minute in reversed(self._minutes):
                    if (hour, minute) <= ceiling:
                        return self._aware(day, hour, minute)
        return None

    def _aware(self, day: dt.date, hour: int, minute: int) -> dt.datetime:
        local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)
        return local.astimezone(UTC)

    def due_at(self, last_run_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
        latest = self.previous_at_or_before(now)
        return latest if latest is not None and latest > _aware(last_run_at) else None

    def to_json(self) -> dict[str, Any]:
        keys = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        fields = {
            k: v if isinstance(v, str | int) else list(v)
            for k, v in zip(keys, self._orig, strict=True)
        }
        return {"type": "crontab", **fields}

    def __repr__(self) -> str:
        m, h, dow, dom, moy = (str(v) for v in self._orig)
        return f"<crontab: {m} {h} {dom} {moy} {dow} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


def maybe_schedule(value: Any) -> BaseSchedule:
    """Seconds, a timedelta or a schedule → a schedule."""
    if isinstance(value, BaseSchedule):
        return value
    if isinstance(value, int | float | dt.timedelta):
        return schedule(value)
    raise ImproperlyConfigured(
        f"bad schedule {value!r}: use seconds, a timedelta, schedule(...) or crontab(...)"
    )


def from_json(data: dict[str, Any], tz: str | dt.tzinfo | None = None) -> BaseSchedule:
    """Rebuild a schedule stored in the database."""
    kind = data.get("type")
    if kind == "interval":
        return schedule(float(data["every"]))
    if kind == "crontab":
        fields = {k: v for k, v in data.items() if k != "type"}
        return crontab(**fields, tz=tz)
    raise ImproperlyConfigured(f"unknown stored schedule {data!r}")


__all__ = ["BaseSchedule", "crontab", "from_json", "maybe_schedule", "schedstate", "schedule"]
