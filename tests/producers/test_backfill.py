"""The batched backfill gives, record for record, what the per-event step gives:
any batch size, unreadable and refused records dead-lettered with their numbers."""

from __future__ import annotations

import json

import pytest

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.exceptions import ModelError
from trialwatch.models.pipeline import step
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import Outcome
from trialwatch.producers.backfill import BackfillRecord, backfill_events, backfill_file
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate

POLICY = AlertPolicy()


@pytest.fixture(scope="module")
def scorer(quick_model_dir):
    return Scorer.load(quick_model_dir)


@pytest.fixture(scope="module")
def records() -> list[tuple[int, dict | None, str | None]]:
    """Demo events with re-deliveries, an unreadable record, an empty one and an
    event of a patient who never enrolled."""
    events = simulate(PROFILES["demo"]).events[:1200]
    visit = next(e for e in events if e["event_type"] != "ENROLLED")
    stranger = {**visit, "patient_id": "nobody"}
    stream: list[dict | str | None] = []
    for i, event in enumerate(events):
        stream.append(event)
        if i % 50 == 7:
            stream.append(dict(event))  # its replay
        if i % 97 == 3:
            stream.append(dict(events[i // 2]))  # an older duplicate
    stream[300:300] = ["bad json", None, stranger]
    return [
        (n, None, "unreadable") if item == "bad json" else (n, item, None)
        for n, item in enumerate(stream)
    ]


def per_event(records, scorer) -> tuple[list[BackfillRecord], dict]:
    """The reference: the backfill loop as it was, ``step`` per event."""
    states: dict = {}
    out = []
    for number, event, error in records:
        if error is not None or event is None:
            out.append(BackfillRecord(number, "dead_lettered", reason=error or "empty record"))
            continue
        try:
            result = step(states.get(event["patient_id"]), event, scorer, POLICY)
        except ModelError as exc:
            out.append(BackfillRecord(number, "dead_lettered", reason=f"{exc.reason}: {exc}"))
            continue
        if result.outcome is Outcome.DUPLICATE:
            out.append(BackfillRecord(number, result.label))
            continue
        states[event["patient_id"]] = result.state
        out.append(BackfillRecord(number, result.label, result.score, result.alert,
                                  trial_id=result.state.trial_id, matured=result.matured,
                                  features=result.features))  # fmt: skip
    return out, states


def comparable(rec: BackfillRecord) -> tuple:
    features = None if rec.features is None else rec.features.tobytes()
    return (rec.number, rec.outcome, rec.score, rec.alert, rec.reason, rec.trial_id,
            rec.matured, features)  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 7, 250, 2_000])
def test_any_batch_size_gives_the_per_event_records_and_states(scorer, records, batch_size):
    expected, expected_states = per_event(records, scorer)
    states: dict = {}
    got = list(backfill_events(records, scorer, POLICY, states, batch_size=batch_size))
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]
    assert states == expected_states
    outcomes = {r.outcome for r in got}
    assert {"scored", "duplicate", "dead_lettered"} <= outcomes
    assert any(r.alert for r in got)


def test_the_dead_letter_report_keeps_record_numbers(quick_model_dir, tmp_path):
    events = simulate(PROFILES["demo"]).events[:400]
    visit = next(e for e in events if e["event_type"] != "ENROLLED")
    stranger = {**visit, "patient_id": "nobody"}
    path = tmp_path / "events.jsonl"
    write_jsonl([*events[:100], stranger, *events[100:]], path)
    lines = path.read_text().splitlines()
    lines.insert(50, "{not json")
    path.write_text("\n".join(lines) + "\n")
    report = backfill_file(path, tmp_path / "out", quick_model_dir, POLICY)
    dead = [json.loads(line) for line in (tmp_path / "out" / "dead_letter.jsonl").open()]
    assert [d["record"] for d in dead] == [51, 102]  # line numbers, from 1
    assert dead[0]["reason"].startswith("malformed_json")
    assert dead[1]["reason"].startswith("not_enrolled")
    assert report["records"] == 402 and report["outcomes"]["dead_lettered"] == 2


def test_a_batch_size_below_one_is_refused(scorer):
    with pytest.raises(ValueError, match="batch_size"):
        list(backfill_events([], scorer, POLICY, batch_size=0))
