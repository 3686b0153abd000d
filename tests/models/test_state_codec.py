"""PatientState bytes: the v3 layout round-trips exactly; v1/v2 values still read."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.models.factories import history_factory
from trialwatch.models.state import (
    PatientState,
    apply,
    decode_state,
    encode_state,
    to_record,
)
from trialwatch.schemas import codec, registry, state_layout
from trialwatch.schemas.exceptions import (
    CorruptBody,
    DecodeError,
    EncodeError,
    TruncatedMessage,
    UnknownFingerprint,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
BYTE = st.integers(0, 255)  # the layout's width for flags, grades and tier ranks
DOUBLE = st.floats(allow_nan=False)  # infinities and -0.0 included
TEXT = st.text(max_size=30)


def _ring(*items: st.SearchStrategy, max_size: int = 12) -> st.SearchStrategy:
    return st.lists(st.tuples(*items), max_size=max_size).map(tuple)


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


STATES = st.builds(
    PatientState,
    patient_id=TEXT,
    trial_id=TEXT,
    site_id=TEXT,
    phase=TEXT,
    arm=TEXT,
    sex=TEXT,
    age=INT64,
    distance_km=DOUBLE,
    planned_visits=INT64,
    visit_interval_days=INT64,
    visit_window_days=INT64,
    enrolled_at=INT64,
    last_event_time=INT64,
    n_applied=INT64,
    n_after_end=INT64,
    completed_visits=INT64,
    missed_visits=INT64,
    resolved_visits=INT64,
    late_ms_sum=INT64,
    ae_count=INT64,
    ae_max_grade=INT64,
    epro_count=INT64,
    epro_first=_maybe(DOUBLE),
    epro_first_at=_maybe(INT64),
    unreached_total=INT64,
    visits=_ring(INT64, INT64, BYTE, DOUBLE),
    aes=_ring(INT64, BYTE, BYTE),
    epros=_ring(INT64, DOUBLE),
    contacts=_ring(INT64, BYTE),
    seen=_ring(INT64, INT64, max_size=40),
    ended=st.booleans(),
    end_type=_maybe(TEXT),
    ended_at=_maybe(INT64),
    last_alert_tier=_maybe(TEXT),
    last_alert_at=_maybe(INT64),
    last_event_hash=_maybe(INT64),
    last_alert_event_hash=_maybe(INT64),
    previous_alert_tier=_maybe(TEXT),
    open_predictions=_ring(INT64, DOUBLE, BYTE, TEXT),
)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exactly(a: PatientState, b: PatientState) -> bool:
    """Equal, and with the same types and float signs (repr shows 1 vs 1.0, -0.0)."""
    return type(a) is type(b) is PatientState and a == b and repr(a) == repr(b)


def _realistic() -> PatientState:
    state = None
    for event in history_factory(misses=3):
        state, _ = apply(state, event)
    return state


@EXAMPLES
@given(STATES)
def test_v3_round_trips_exactly(state):
    data = encode_state(state)
    assert data[2:10] == registry.get("PatientState", 3).fingerprint
    assert _exactly(decode_state(data), state)


def test_empty_rings_and_nulls_round_trip():
    state = PatientState("p", "t", "s", "II", "ACTIVE", "F", 50, 5.0, 10, 21, 3, 0, 0)
    assert state.visits == state.seen == state.open_predictions == ()
    assert state.epro_first is None and state.end_type is None
    assert _exactly(decode_state(encode_state(state)), state)


@EXAMPLES
@given(STATES)
def test_v2_values_decode_to_the_same_state(state):
    old = codec.encode_with(to_record(state), "PatientState", 2)
    assert _exactly(decode_state(old), state)


@EXAMPLES
@given(STATES.filter(lambda s: not s.open_predictions))
def test_v1_values_decode_to_the_same_state(state):
    old = codec.encode_with(to_record(state), "PatientState", 1)
    assert old[2:10] == registry.get("PatientState", 1).fingerprint
    assert _exactly(decode_state(old), state)


@pytest.mark.parametrize(
    "change",
    [
        {"epro_first": -0.0, "distance_km": -0.0},
        {"epro_first": float("inf"), "distance_km": float("-inf")},
        {"age": -(2**63), "late_ms_sum": 2**63 - 1, "last_event_hash": 0, "ended_at": -1},
        {"patient_id": "", "site_id": "é🙂\x00", "end_type": "", "last_alert_tier": None},
        {"seen": tuple((2**63 - 1 - i, -(2**63) + i) for i in range(40))},
        {"open_predictions": ((1, 0.5, 255, ""), (2, -0.0, 0, "v2"))},
    ],
)
def test_extreme_values_round_trip(change):
    from dataclasses import replace

    state = replace(_realistic(), **change)
    assert _exactly(decode_state(encode_state(state)), state)
    assert _exactly(decode_state(codec.encode_with(to_record(state), "PatientState", 2)), state)


def test_a_realistic_state_is_smaller_than_two_kilobytes_and_reads_back():
    state = _realistic()
    assert len(encode_state(state)) < 2048
    assert _exactly(decode_state(encode_state(state)), state)


def test_every_truncation_raises_a_decode_error():
    data = encode_state(_realistic())
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_state(data[:n])


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_corrupted_values_decode_or_raise_a_decode_error(data):
    value = bytearray(encode_state(_realistic()))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(10, len(value) - 1))  # behind the header
        value[at] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_state(bytes(value))
    except DecodeError:
        return
    assert isinstance(decoded, PatientState)


@pytest.mark.parametrize(
    ("corrupt", "error"),
    [
        (lambda d: d + b"\x00", CorruptBody),  # trailing byte
        (lambda d: d[:10] + d[10:-1], TruncatedMessage),
        (lambda d: d[:2] + registry.get("RiskScore", 1).fingerprint + d[10:], UnknownFingerprint),
    ],
)
def test_specific_corruptions_name_their_reason(corrupt, error):
    with pytest.raises(error):
        decode_state(corrupt(encode_state(_realistic())))


def test_ring_lengths_that_disagree_with_the_rings_are_corrupt():
    data = bytearray(encode_state(_realistic()))
    counts_at = codec.HEADER_SIZE + state_layout.NUMBERS.size - 12  # six uint16 lengths
    data[counts_at] += 1  # one more visit than the rings hold
    with pytest.raises(CorruptBody, match="ring lengths"):
        decode_state(bytes(data))


@pytest.mark.parametrize(
    "change",
    [
        {"aes": ((1, 300, 0),)},  # grade wider than the layout's byte
        {"age": 2**63},  # beyond Avro's long
        {"seen": ((1.5, 2),)},  # a float time
        {"patient_id": 7},
    ],
)
def test_values_outside_the_layout_raise_an_encode_error(change):
    from dataclasses import replace

    with pytest.raises(EncodeError):
        encode_state(replace(_realistic(), **change))
