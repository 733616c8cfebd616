"""Jobs and outcomes cross the prefork pipes pickled, their times packed as integers."""

from __future__ import annotations

import datetime as dt
import pickle
import zoneinfo

from hypothesis import given
from hypothesis import strategies as st

from celeriac.message import Job
from celeriac.worker.executor import Outcome

ZONES = st.sampled_from(
    [dt.UTC, zoneinfo.ZoneInfo("Etc/UTC"), zoneinfo.ZoneInfo("Asia/Seoul"), None]
)
TIMES = st.none() | st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2300, 1, 1), timezones=ZONES
)


def _same_time(got: dt.datetime | None, sent: dt.datetime | None) -> bool:
    """The same instant (aware) or the same value (naive, None). Aware times are compared
    by difference: ``==`` across zones is always False for a time in a fold or gap."""
    if got is None or sent is None or sent.tzinfo is None:
        return got == sent and (got is None or got.tzinfo is None)
    return got - sent == dt.timedelta(0) and got.utcoffset() == dt.timedelta(0)


@given(eta=TIMES, expires=TIMES)
def test_a_job_keeps_every_field_and_the_instant_of_its_times(
    eta: dt.datetime | None, expires: dt.datetime | None
) -> None:
    job = Job(
        7,
        2,
        "id",
        "t.add",
        "celery",
        3,
        eta,
        expires,
        1,
        True,
        False,
        "application/json",
        {"timelimit": [1.5, None]},
        b"[[1], {}, {}]",
        revoked=True,
        started=True,
    )
    back = pickle.loads(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
    assert _same_time(back.eta, eta) and _same_time(back.expires, expires)
    for name in Job.__dataclass_fields__:
        if name not in ("eta", "expires"):
            assert getattr(back, name) == getattr(job, name), name


@given(eta=TIMES, started=TIMES)
def test_an_outcome_keeps_every_field_and_the_instant_of_its_times(
    eta: dt.datetime | None, started: dt.datetime | None
) -> None:
    outcome = Outcome(
        7,
        2,
        "id",
        "t.add",
        "requeue",
        "RETRY",
        result=b"1",
        traceback="tb",
        retry=True,
        eta=eta,
        runtime=0.25,
        date_started=started,
        errbacks=[{"task": "t.err"}],
    )
    back = pickle.loads(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
    assert _same_time(back.eta, eta) and _same_time(back.date_started, started)
    for name in Outcome.__dataclass_fields__:
        if name not in ("eta", "date_started"):
            assert getattr(back, name) == getattr(outcome, name), name


@given(
    started=TIMES,
    status=st.sampled_from(["SUCCESS", "FAILURE", "IGNORED"]),
    result=st.none() | st.binary(max_size=20),
    traceback=st.none() | st.text(max_size=20),
    store=st.booleans(),
    extra=st.sampled_from(
        [
            {},
            {"queue": "q"},
            {"queue": ""},
            {"error": "bad"},
            {"body": b"[]"},
            {"body": b""},
            {"marks": [1]},
            {"retry": True},
        ]
    ),
)
def test_a_plain_outcome_takes_the_short_form_and_keeps_every_field(
    started: dt.datetime | None,
    status: str,
    result: bytes | None,
    traceback: str | None,
    store: bool,
    extra: dict[str, object],
) -> None:
    outcome = Outcome(
        9,
        1,
        "id",
        "t.noop",
        "finish",
        status,
        result=result,
        traceback=traceback,
        store=store,
        runtime=0.5,
        date_started=started,
        **extra,  # type: ignore[arg-type]
    )
    reduced = outcome.__reduce__()
    assert (len(reduced[1]) == 12) == (not extra)  # the short form only for a plain end
    back = pickle.loads(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
    assert _same_time(back.date_started, started)
    for name in Outcome.__dataclass_fields__:
        if name != "date_started":
            assert getattr(back, name) == getattr(outcome, name), name
