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


def _write_csv(events: list[dict], path, columns: list[str]) -> None:
    import csv

    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for event in events:
            writer.writerow({c: "" if event.get(c) is None else event[c] for c in columns})


def test_a_csv_export_of_the_contract_reads_as_its_json_lines(tmp_path):
    events = WORLD.events[:60]
    columns = sorted({k for e in events for k, v in e.items() if v is not None})
    _write_csv(events, tmp_path / "w.csv", columns)
    records = list(read_events(tmp_path / "w.csv"))
    assert [r.event for r in records] == events
    assert [r.number for r in records] == list(range(2, len(events) + 2))  # header: row 1
    assert count_records(tmp_path / "w.csv") == len(events)
    assert [r.event for r in read_events(tmp_path / "w.csv", start=3)] == events[3:]


def test_bad_csv_rows_are_reported_by_row_and_the_rest_goes_through(tmp_path):
    events = WORLD.events[:4]
    columns = sorted({k for e in events for k, v in e.items() if v is not None})
    _write_csv(events, tmp_path / "w.csv", columns)
    lines = (tmp_path / "w.csv").read_text().splitlines()
    header = lines[0].split(",")
    bad_time = lines[2].split(",")
    bad_time[header.index("event_time")] = "yesterday"
    lines[2] = ",".join(bad_time)
    lines[3] += ",surplus"
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    records = list(read_events(tmp_path / "w.csv"))
    assert [(r.number, r.error is None) for r in records] == [
        (2, True), (3, False), (4, False), (5, True)
    ]  # fmt: skip
    assert "event_time" in records[1].error and "not a long" in records[1].error
    assert records[2].error == "malformed_csv: more cells than columns"
    assert [r.event for r in records if r.event] == [events[0], events[3]]


def test_a_csv_whose_header_is_not_the_contract_is_refused_in_one_line(tmp_path):
    (tmp_path / "w.csv").write_text("patient,when\nP1,2024-01-01\n")
    [record] = list(read_events(tmp_path / "w.csv"))
    assert (record.number, record.event) == (1, None)
    assert record.error == "bad_header: unknown column 'patient' (columns are VisitEvent fields)"
