"""The patient table's value codec writes v3 and still reads the older versions."""

from __future__ import annotations

from dataclasses import replace

from tests.models.factories import history_factory
from trialwatch.models.state import apply, to_record
from trialwatch.schemas import codec, registry
from trialwatch.streams.codecs import PatientStateCodec


def _state():
    state = None
    for event in history_factory():
        state, _ = apply(state, event)
    return state


def test_the_table_codec_writes_v3_and_reads_it_back():
    state = _state()
    table = PatientStateCodec()
    data = table.dumps(state)
    assert data[2:10] == registry.get("PatientState", 3).fingerprint
    assert table.loads(data) == state


def test_the_second_encoding_of_one_object_reuses_the_bytes():
    table = PatientStateCodec()
    state = _state()
    first = table.dumps(state)
    assert table.dumps(state) is first
    other = replace(state, n_applied=state.n_applied + 1)
    assert table.dumps(other) != first


def test_values_an_older_worker_wrote_still_restore():
    state = _state()
    for version in (1, 2):
        old = codec.encode_with(to_record(state), "PatientState", version)
        assert PatientStateCodec().loads(old) == state
