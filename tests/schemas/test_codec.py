"""Single-object codec: interop with the reference implementation, evolution, fuzz."""

from __future__ import annotations

import io
import json

import avro.io
import avro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.schemas.factories import EVENT_TYPES, alert_factory, event_factory, score_factory
from trialwatch.schemas import codec, registry
from trialwatch.schemas.exceptions import (
    BadMarker,
    ContractViolation,
    DecodeError,
    TruncatedMessage,
    UnknownFingerprint,
)

HEADER = codec.HEADER_SIZE
RECORDS = [("VisitEvent", event_factory(t)) for t in EVENT_TYPES] + [
    ("RiskScore", score_factory()),
    ("RiskScore", score_factory(calibration_version="T-01.r1")),
    ("RiskAlert", alert_factory()),
    ("RiskAlert", alert_factory(previous_tier="MEDIUM")),
]


def _reference(name: str) -> avro.schema.Schema:
    return avro.schema.parse(registry.current(name).path.read_text())


def _reference_body(name: str, record: dict) -> bytes:
    out = io.BytesIO()
    avro.io.DatumWriter(_reference(name)).write(_as_reference(record), avro.io.BinaryEncoder(out))
    return out.getvalue()


def _as_reference(record: dict) -> dict:
    """The reference package wants datetimes for timestamp-millis fields."""
    from datetime import UTC, datetime

    converted = dict(record)
    for key in ("event_time", "scheduled_time"):
        if converted.get(key) is not None:
            converted[key] = datetime.fromtimestamp(converted[key] / 1000, UTC)
    return converted


def _from_reference(record: dict) -> dict:
    converted = dict(record)
    for key in ("event_time", "scheduled_time"):
        value = converted.get(key)
        if value is not None and not isinstance(value, int):
            converted[key] = int(value.timestamp() * 1000)
    return converted


@pytest.mark.parametrize(("name", "record"), RECORDS)
def test_reference_bytes_decode_with_our_codec(name, record):
    header = codec.MARKER + registry.current(name).fingerprint
    assert codec.decode(header + _reference_body(name, record), name) == record


@pytest.mark.parametrize(("name", "record"), RECORDS)
def test_our_bytes_decode_with_the_reference_package(name, record):
    data = codec.encode(record, name)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == registry.current(name).fingerprint
    decoder = avro.io.BinaryDecoder(io.BytesIO(data[10:]))
    decoded = avro.io.DatumReader(_reference(name)).read(decoder)
    assert _from_reference(decoded) == record
    assert data[10:] == _reference_body(name, record)  # byte-identical bodies


def test_fingerprint_matches_the_reference_package_where_it_follows_the_spec():
    # avro's Python package keeps {"type": "long"} for logical-typed fields in its
    # canonical form, against the spec's [PRIMITIVES] rule; with logical types
    # removed both implementations must agree bit for bit.
    for versions in registry.BY_NAME.values():
        for version in versions.values():
            plain = registry._without_logical_types(version.source)
            reference = avro.schema.parse(json.dumps(plain))
            assert reference.fingerprint("CRC-64-AVRO") == version.fingerprint
            assert reference.canonical_form == version.canonical


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(EVENT_TYPES),
    patient=st.text(min_size=1, max_size=30),
    when=st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999),
    grade=st.integers(1, 5),
    score=st.floats(0, 100, allow_nan=False),
    source=st.one_of(st.none(), st.text(max_size=10)),
)
def test_events_round_trip(kind, patient, when, grade, score, source):
    overrides = {"patient_id": patient, "event_time": when, "source_system": source}
    if kind == "ADVERSE_EVENT":
        overrides["ae_grade"] = grade
    if kind == "EPRO_SUBMITTED":
        overrides["epro_score"] = score
    event = event_factory(kind, **overrides)
    assert codec.decode(codec.encode(event)) == event


@settings(max_examples=100, deadline=None)
@given(
    p=st.floats(0, 1),
    curve=st.lists(st.floats(0, 1), max_size=6),
    tier=st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
)
def test_scores_round_trip(p, curve, tier):
    score = score_factory(probability=p, retention=curve, retention_days=list(range(len(curve))))
    score["tier"] = tier
    assert codec.decode(codec.encode(score, "RiskScore"), "RiskScore") == score


def test_v1_writer_is_read_by_the_current_v2_reader():
    event = event_factory("ENROLLED")
    v1 = {k: v for k, v in event.items() if k not in ("source_system", "visit_window_days")}
    data = codec.encode_with(v1, "VisitEvent", 1)
    assert data[2:10] == registry.get("VisitEvent", 1).fingerprint
    decoded = codec.decode(data)
    assert decoded["source_system"] is None and decoded["visit_window_days"] is None
    assert {k: decoded[k] for k in v1} == v1


def test_v2_writer_is_read_by_a_v1_reader():
    event = event_factory("ENROLLED")
    decoded = codec.decode(codec.encode(event), reader_version=1)
    assert set(decoded) == set(event) - {"source_system", "visit_window_days"}
    assert all(decoded[k] == event[k] for k in decoded)


def test_typed_errors_name_the_reason():
    data = codec.encode(event_factory("VISIT_MISSED"))
    cases = [
        (b"", BadMarker),
        (b"\x00\x01" + data[2:], BadMarker),
        (data[:6], TruncatedMessage),
        (data[:2] + b"\xff" * 8 + data[10:], UnknownFingerprint),
        (data[:-2], TruncatedMessage),
        (codec.encode(score_factory(), "RiskScore"), UnknownFingerprint),  # wrong record
    ]
    for raw, error in cases:
        with pytest.raises(error) as info:
            codec.decode(raw)
        assert info.value.reason == error.reason


def test_trailing_bytes_are_corrupt():
    with pytest.raises(DecodeError) as info:
        codec.decode(codec.encode(event_factory()) + b"\x00")
    assert info.value.reason == "corrupt_body"


BODY_REASONS = {"truncated", "corrupt_body", "contract_violation"}


def _outcome(data: bytes) -> str | dict:
    """The decoded record, or the reason of the DecodeError (any other error fails)."""
    try:
        return codec.decode(data)
    except DecodeError as exc:
        return exc.reason


def _accepted(record: dict) -> bool:
    """A record the decoder let through is a whole, valid event that encodes again."""
    return set(record) == set(event_factory()) and codec.decode(codec.encode(record)) == record


def test_every_truncation_and_bit_flip_raises_only_decode_errors():
    data = codec.encode(event_factory("ENROLLED"))
    cuts = [_outcome(data[:cut]) for cut in range(len(data))]
    assert cuts[0] == "bad_marker"  # empty
    assert cuts[1:HEADER] == ["truncated"] * (HEADER - 1)  # inside the header
    assert set(cuts[HEADER:]) <= {"truncated", "corrupt_body"} and "truncated" in cuts
    flips = []
    for i in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        flips.append(_outcome(bytes(flipped)))
    assert flips[:16] == ["bad_marker"] * 16  # the marker C3 01
    assert flips[16 : HEADER * 8] == ["unknown_fingerprint"] * 64  # the fingerprint
    body = flips[HEADER * 8 :]
    errors = [f for f in body if isinstance(f, str)]
    assert set(errors) <= BODY_REASONS and errors
    assert all(_accepted(f) for f in body if isinstance(f, dict))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_errors(raw):
    outcome = _outcome(raw)
    if not raw or not raw.startswith(codec.MARKER[: len(raw)]):
        assert outcome == "bad_marker"
    elif len(raw) < HEADER:
        assert outcome == "truncated"
    elif registry.BY_FINGERPRINT.get(raw[2:HEADER]) is None:
        assert outcome == "unknown_fingerprint"
    # Behind a valid header, random bytes are a body error or a whole valid event.
    behind_header = _outcome(codec.MARKER + registry.current("VisitEvent").fingerprint + raw)
    if isinstance(behind_header, str):
        assert behind_header in BODY_REASONS
    else:
        assert _accepted(behind_header)


def test_contract_violations_on_the_wire_are_typed():
    bad = event_factory("ADVERSE_EVENT")
    bad["ae_grade"] = 7
    data = codec.encode_with(bad, "VisitEvent", 2)
    with pytest.raises(ContractViolation) as info:
        codec.decode(data)
    assert info.value.field == "ae_grade"
    assert info.value.reason == "contract_violation"


def test_a_v1_score_reads_as_served_by_the_model_s_own_calibration():
    """Scores written before recalibration existed decode with calibration_version None."""
    old = {k: v for k, v in score_factory().items() if k != "calibration_version"}
    data = codec.encode_with(old, "RiskScore", 1)
    assert codec.decode(data, "RiskScore") == {**old, "calibration_version": None}
