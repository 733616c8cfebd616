"""JSON round-trips of the types Celery users pass, and refusal of what is not accepted."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celeriac import serialization
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError
from celeriac.serialization import JSON, PICKLE

ACCEPT_JSON = frozenset({JSON})

timezones = st.sampled_from(
    [
        None,
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(-dt.timedelta(hours=8)),
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.datetimes(timezones=timezones),
    st.dates(),
    st.times(timezones=timezones),
    st.uuids(),
    st.decimals(allow_nan=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(), inner, max_size=5)
    ),
    max_leaves=20,
)


def roundtrip(value: Any) -> Any:
    return serialization.loads(serialization.dumps(value), JSON, ACCEPT_JSON)


@given(values)
def test_json_round_trips_values(value: Any) -> None:
    assert roundtrip(value) == value


@given(values)
def test_round_trip_keeps_exact_types(value: Any) -> None:
    def types(v: Any) -> Any:
        if isinstance(v, list):
            return [types(x) for x in v]
        if isinstance(v, dict):
            return {k: types(x) for k, x in v.items()}
        return type(v)

    assert types(roundtrip(value)) == types(value)


def test_tuples_and_sets_become_lists_as_in_celery() -> None:
    assert roundtrip((1, 2)) == [1, 2]
    assert sorted(roundtrip({3, 1})) == [1, 3]


def test_aware_datetime_keeps_its_offset() -> None:
    value = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    back = roundtrip(value)
    assert back == value and back.utcoffset() == dt.timedelta(hours=2)


def test_decimal_keeps_precision() -> None:
    assert roundtrip(decimal.Decimal("0.10000000000000000000001")) == decimal.Decimal(
        "0.10000000000000000000001"
    )


@pytest.mark.parametrize("value", [object(), lambda: 1, {(1, 2): "tuple key"}, {1j}], ids=repr)
def test_unserializable_value_raises_encode_error(value: Any) -> None:
    with pytest.raises(EncodeError, match="cannot serialize"):
        serialization.dumps(value)


def test_circular_value_raises_encode_error() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(EncodeError):
        serialization.dumps(value)


@given(st.binary())
def test_decoding_arbitrary_bytes_only_raises_decode_error(data: bytes) -> None:
    try:
        serialization.loads(data, JSON, ACCEPT_JSON)
    except DecodeError:
        pass


@given(st.binary())
def test_decoding_arbitrary_pickle_only_raises_decode_error(data: bytes) -> None:
    try:
        serialization.loads(data, PICKLE, frozenset({PICKLE}))
    except DecodeError:
        pass


@given(
    st.sampled_from(sorted(serialization._DECODERS)),
    st.one_of(st.text(), st.integers(), st.none(), st.lists(st.integers())),
)
def test_malformed_tagged_values_raise_decode_error(kind: str, payload: Any) -> None:
    data = serialization.dumps({"__type__": kind, "__value__": payload})
    try:
        serialization.loads(data, JSON, ACCEPT_JSON)
    except DecodeError:
        pass


def test_deeply_nested_payload_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        serialization.loads(b"[" * 100_000, JSON, ACCEPT_JSON)


def test_pickle_refused_unless_accepted() -> None:
    data = pickle.dumps({"x": 1})
    with pytest.raises(ContentDisallowed, match="accept_content"):
        serialization.loads(data, PICKLE, ACCEPT_JSON)
    assert serialization.loads(data, PICKLE, frozenset({JSON, PICKLE})) == {"x": 1}


def test_accepted_takes_names_and_content_types() -> None:
    assert serialization.accepted(["json", PICKLE]) == frozenset({JSON, PICKLE})
    with pytest.raises(EncodeError, match="unknown serializer 'yaml'"):
        serialization.accepted(["yaml"])


def test_pickle_serializer_round_trips_arbitrary_objects() -> None:
    value = {"id": uuid.uuid4(), "when": dt.datetime.now(dt.UTC), "t": (1, 2)}
    data = serialization.dumps(value, PICKLE)
    assert serialization.loads(data, PICKLE, frozenset({PICKLE})) == value


@given(st.lists(st.one_of(st.integers(), st.text(), st.none(), st.floats(allow_nan=False))))
def test_batch_bodies_are_the_bytes_one_call_would_send(args: list[Any]) -> None:
    from celeriac.message import args_encoder, encode_body

    embed = {"callbacks": None, "chord": None, "note": "é"}
    for content_type in (JSON, PICKLE):
        encode = args_encoder(embed, content_type)
        assert encode(tuple(args)) == encode_body(tuple(args), {}, embed, content_type)
    assert args_encoder(None, JSON)(args) == encode_body(args, {}, None, JSON)
