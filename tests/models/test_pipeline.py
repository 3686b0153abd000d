"""The per-event step: scores, event-time cooldowns, deterministic alerts; and the
offline backfill, which is the same step over a file."""

from __future__ import annotations

import json

import pytest

from tests.models.factories import history_factory
from trialwatch.models.alerts import AlertPolicy, alert_id, decide
from trialwatch.models.pipeline import step
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import apply, with_alert
from trialwatch.producers.backfill import backfill_events, backfill_file
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas.contract import MS_PER_DAY
from trialwatch.streams.settings import load as load_settings


def test_cooldown_is_measured_in_event_time():
    events = history_factory()
    state = None
    for event in events:
        state, _ = apply(state, event)
    policy = AlertPolicy(cooldown_days=14)
    t = events[-1]["event_time"]
    assert decide(state, "MEDIUM", t, policy) is None
    first = decide(state, "HIGH", t, policy)
    assert first is not None and first.previous_tier is None
    alerted = with_alert(state, "HIGH", t)
    assert decide(alerted, "HIGH", t + 13 * MS_PER_DAY, policy) is None  # within cooldown
    assert decide(alerted, "CRITICAL", t + MS_PER_DAY, policy).previous_tier == "HIGH"
    assert decide(alerted, "HIGH", t + 14 * MS_PER_DAY, policy) is not None
    assert alert_id("e1", "HIGH") == alert_id("e1", "HIGH") != alert_id("e1", "CRITICAL")


@pytest.fixture(scope="module")
def scorer(quick_model_dir):
    return Scorer.load(quick_model_dir)


def test_replaying_a_history_gives_the_same_scores_and_alerts(scorer):
    events = simulate(PROFILES["demo"]).events[:3000]
    policy = AlertPolicy()
    runs = []
    for _ in range(2):
        out = list(backfill_events(((i, e, None) for i, e in enumerate(events)), scorer, policy))
        runs.append(out)
    assert [r.score for r in runs[0]] == [r.score for r in runs[1]]
    assert [r.alert for r in runs[0]] == [r.alert for r in runs[1]]
    alerts = [r.alert for r in runs[0] if r.alert]
    assert alerts and all(a["reasons"] and a["recommended_action"] for a in alerts)


def test_backfill_scores_equal_the_scorers(scorer, quick_model_dir, tmp_path):
    events = simulate(PROFILES["demo"]).events[:1500]
    path = tmp_path / "events.jsonl"
    write_jsonl(events, path)
    report = backfill_file(path, tmp_path / "out", quick_model_dir, load_settings({}).alert_policy)
    written = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").open()]
    assert report["scores"] == len(written) > 0
    states: dict = {}
    direct = []
    for event in events:
        result = step(states.get(event["patient_id"]), event, scorer)
        states[event["patient_id"]] = result.state
        if result.score:
            direct.append(result.score)
    assert written == direct
    assert (tmp_path / "out" / "scores.avro").stat().st_size > 0


def test_a_redelivered_latest_event_rebuilds_exactly_its_outputs(scorer):
    """After a crash the state may be durable while its outputs were lost: the latest
    event, delivered again, reproduces them; an older duplicate produces nothing."""
    events = simulate(PROFILES["demo"]).events
    policy = AlertPolicy()
    states, last = {}, {}
    for event in events[:4000]:
        result = step(states.get(event["patient_id"]), event, scorer, policy)
        states[event["patient_id"]] = result.state
        if result.score:
            last[event["patient_id"]] = (event, result)
    with_alert = [(e, r) for e, r in last.values() if r.alert]
    assert with_alert, "the demo world should raise alerts"
    for event, original in list(last.values())[:50] + with_alert[:20]:
        again = step(original.state, event, scorer, policy)
        assert again.outcome.value == "duplicate" and again.replayed
        assert again.state == original.state
        assert again.score == original.score
        assert again.alert == original.alert
    patient = events[0]["patient_id"]
    older = next(e for e in events[1:4000] if e["patient_id"] == patient)
    assert not step(states[patient], older, scorer, policy).replayed
