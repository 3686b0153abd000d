"""The per-event step: scores, event-time cooldowns, deterministic alerts; and the
offline backfill, which is the same step over a file."""

from __future__ import annotations

import json

import pytest

from tests.models.factories import history_factory
from trialwatch.models.alerts import AlertPolicy, alert_id, decide
from trialwatch.models.features import features
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


def test_a_shadow_challenger_never_changes_alerts_scores_or_features(scorer):
    """The same history with and without a challenger: identical champion outputs;
    the challenger's scores name its version, and its predictions mature too."""
    from dataclasses import replace as _replace

    from trialwatch.models.recalibration import Calibration

    events = simulate(PROFILES["demo"]).events[:4000]
    (trial, *_) = sorted({e["trial_id"] for e in events})
    cal = Calibration(scorer.version, trial, f"{trial}.r1", 0.9, 1.1, scorer.tiers)
    challenger = scorer.with_calibrations({trial: cal})
    policy = AlertPolicy()
    alone, shadowed = {}, {}
    matured_versions = set()
    shadows = 0
    for event in events:
        pid = event["patient_id"]
        a = step(alone.get(pid), event, scorer, policy)
        b = step(shadowed.get(pid), event, scorer, policy, challenger)
        alone[pid], shadowed[pid] = a.state, b.state
        assert (a.score, a.alert, a.outcome) == (b.score, b.alert, b.outcome)
        assert _replace(a.state, open_predictions=()) == _replace(b.state, open_predictions=())
        matured_versions |= {o.model_version for o in b.matured}
        if b.shadow is not None:
            shadows += 1
            assert b.shadow["event_id"] == b.score["event_id"]
            if b.shadow["trial_id"] == trial:
                assert b.shadow["calibration_version"] == cal.version
                assert b.shadow["probability"] == cal.apply_one(b.score["probability"])
            else:
                assert b.shadow["probability"] == b.score["probability"]
    assert shadows > 1000
    assert {scorer.version, f"{scorer.version}+{cal.version}"} <= matured_versions


def test_a_trial_map_changes_the_probability_tier_and_value_not_the_ranking(scorer):
    from trialwatch.models.exceptions import ArtifactError
    from trialwatch.models.recalibration import Calibration

    events = history_factory()
    state = None
    for event in events:
        state, _ = apply(state, event)
    x = features(state, events[-1]["event_time"])
    plain = scorer.score_one(x, state, events[-1]["event_time"])
    cal = Calibration(scorer.version, state.trial_id, f"{state.trial_id}.r1", 1.0, 1.0,
                      scorer.tiers)  # fmt: skip
    mapped = scorer.with_calibrations({state.trial_id: cal}).score_one(
        x, state, events[-1]["event_time"]
    )
    assert mapped.probability == pytest.approx(cal.apply_one(plain.probability), rel=1e-15)
    assert mapped.probability > plain.probability and mapped.clv < plain.clv
    assert mapped.served_version == f"{scorer.version}+{cal.version}"
    assert plain.served_version == scorer.version and plain.calibration_version is None
    assert scorer.calibrations == {}  # the original is untouched: snapshots swap whole
    other = Calibration("another-model", state.trial_id, "x.r1", 0.0, 1.0, scorer.tiers)
    with pytest.raises(ArtifactError, match="another-model"):
        scorer.with_calibrations({state.trial_id: other})


def test_the_page_budget_counts_event_time_weeks_and_spares_critical():
    from trialwatch.models.alerts import budget_week, pages_without_budget
    from trialwatch.schemas.contract import MS_PER_DAY

    week = 7 * MS_PER_DAY
    assert budget_week(3 * week) == 3 and budget_week(4 * week - 1) == 3
    assert pages_without_budget("CRITICAL", 5)
    assert not pages_without_budget("HIGH", 5)
    assert pages_without_budget("HIGH", 0)
