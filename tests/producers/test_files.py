"""Event files: round trips, bad lines reported with their number, resume."""

from __future__ import annotations

import json

from trialwatch.producers.files import count_records, read_events, write_avro, write_jsonl
from trialwatch.producers.simulator import SimulationConfig, simulate

WORLD = simulate(SimulationConfig(seed=3, n_participants=40, n_trials=2))


def test_jsonl_and_avro_round_trip(tmp_path):
    for name, write in (("e.jsonl", write_jsonl), ("e.avro", write_avro)):
        path = tmp_path / name
        write(WORLD.events, path)
        records = list(read_events(path))
        assert [r.error for r in records] == [None] * len(WORLD.events)
        assert [r.event for r in records] == WORLD.events
        assert count_records(path) == len(WORLD.events)


def test_bad_lines_are_reported_and_the_rest_goes_through(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(e) for e in WORLD.events[:10]]
    no_patient = dict(WORLD.events[3], patient_id="")
    bad_grade = dict(WORLD.events[4], event_type="ADVERSE_EVENT", ae_grade=9, serious=False)
    lines[2] = "{not json"
    lines[5] = json.dumps(no_patient)
    lines[7] = json.dumps(bad_grade)
    lines.insert(8, json.dumps({"event_id": "x", "mystery": 1}))
    path.write_text("\n".join(lines) + "\n")
    records = list(read_events(path))
    errors = {r.number: r.error for r in records if r.error}
    assert set(errors) == {3, 6, 8, 9}
    assert errors[3].startswith("malformed_json")
    assert "patient_id" in errors[6]
    assert "ae_grade" in errors[8]
    assert "mystery" in errors[9]
    assert sum(r.event is not None for r in records) == 7


def test_resume_skips_the_first_records(tmp_path):
    path = tmp_path / "e.avro"
    write_avro(WORLD.events, path)
    resumed = list(read_events(path, start=25))
    assert resumed[0].number == 26
    assert [r.event for r in resumed] == WORLD.events[25:]
