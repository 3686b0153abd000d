"""The hand-written v3 framing is plain Avro: fastavro and the reference package agree."""

from __future__ import annotations

import io
import json

import avro.io
import avro.schema
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trialwatch.schemas import codec, registry, state_layout

V3 = registry.get("PatientState", 3)
TEXT = st.text(max_size=20)
INT64 = st.integers(-(2**63), 2**63 - 1)
BYTE = st.integers(0, 255)
DOUBLE = st.floats(allow_nan=False)


def _rings(n: int) -> st.SearchStrategy:
    items = [
        st.tuples(INT64, INT64, BYTE, DOUBLE),
        st.tuples(INT64, BYTE, BYTE),
        st.tuples(INT64, DOUBLE),
        st.tuples(INT64, BYTE),
        st.tuples(INT64, INT64),
        st.tuples(INT64, DOUBLE, BYTE, TEXT),
    ]
    return st.tuples(*(st.lists(item, max_size=n).map(tuple) for item in items))


VALUES = st.builds(
    lambda numbers, ended, optional, strings, optional_strings, rings: (
        *numbers,
        ended,
        *optional,
        *strings,
        *optional_strings,
        *rings,
    ),
    st.tuples(*[INT64] * 16, DOUBLE),
    st.booleans(),
    st.tuples(st.none() | DOUBLE, *[st.none() | INT64] * 5),
    st.tuples(*[TEXT] * 6),
    st.tuples(*[st.none() | TEXT] * 3),
    _rings(6),
)
EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _record(values: tuple) -> dict:
    """The v3 Avro record of FIELDS values, built with struct alone."""
    numbers, rings, versions = state_layout.pack_blocks(values)
    strings = dict(zip(state_layout.FIELDS[24:33], values[24:33], strict=True))
    return {"numbers": numbers, **strings, "rings": rings, "prediction_versions": versions}


def test_fields_are_the_state_fields_once_each():
    from dataclasses import fields

    from trialwatch.models.state import PatientState

    assert sorted(state_layout.FIELDS) == sorted(f.name for f in fields(PatientState))
    assert V3.source["fields"][0]["type"]["size"] == state_layout.NUMBERS.size


@EXAMPLES
@given(VALUES)
def test_the_framing_is_byte_identical_to_fastavro(values):
    data = state_layout.encode(values)
    out = io.BytesIO()
    schemaless_writer(out, V3.parsed, _record(values))
    assert data == codec.MARKER + V3.fingerprint + out.getvalue()
    assert state_layout.decode(data) == values


@EXAMPLES
@given(VALUES)
def test_the_reference_avro_package_reads_what_fastavro_reads(values):
    data = state_layout.encode(values)
    body = io.BytesIO(data[codec.HEADER_SIZE :])
    expected = schemaless_reader(body, V3.parsed, None)
    reference = avro.io.DatumReader(avro.schema.parse(json.dumps(V3.source)))
    decoded = reference.read(avro.io.BinaryDecoder(io.BytesIO(data[codec.HEADER_SIZE :])))
    assert decoded == expected == _record(values)


def test_other_writers_array_blocks_read_too():
    # Avro lets a writer split an array into blocks, a negative count giving the
    # block's byte size; state_layout writes one block but reads any.
    values = (
        *[1] * 16, 2.5, False, *[None] * 6, *["x"] * 6, None, "HIGH", None,
        (), (), (), (), (), ((1, 0.5, 2, "m1"), (2, 0.25, 1, "m2")),
    )  # fmt: skip
    data = state_layout.encode(values)
    tail = b"\x04\x04m1\x04m2\x00"  # one block of 2, then the end
    assert data.endswith(tail)
    blocks = data[: -len(tail)] + b"\x01\x06\x04m1\x02\x04m2\x00"  # -1 (3 bytes), then 1
    assert state_layout.decode(blocks) == values
