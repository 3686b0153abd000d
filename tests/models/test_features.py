"""Features: fixed named columns, meaningful values, identical for any chunking."""

from __future__ import annotations

import numpy as np

from tests.models.factories import history_factory
from trialwatch.models.features import FEATURE_NAMES, N_FEATURES, build_rows, features
from trialwatch.models.reasons import reason_text
from trialwatch.models.state import apply
from trialwatch.producers.simulator import SimulationConfig, simulate


def test_a_row_tells_the_story_of_the_history():
    events = history_factory(misses=2)
    state = None
    for event in events:
        state, _ = apply(state, event)
    x = features(state, events[-1]["event_time"])
    row = dict(zip(FEATURE_NAMES, x, strict=True))
    assert x.shape == (N_FEATURES,) and x.dtype == np.float64
    assert row["missed_share"] == 0.5 and row["consecutive_missed"] == 2
    assert row["missed_last3"] == 2
    assert row["ae_max_grade"] == 3
    assert row["epro_change"] == -25.0
    assert row["unreached_contacts"] == 2 and row["consecutive_unreached"] == 2
    assert reason_text("missed_last3", row["missed_last3"]) == "missed 2 of the last 3 visits"


def _stretched(events: list[dict], factor: int) -> list[dict]:
    """The same story on a protocol whose visits are ``factor`` times further apart."""
    t0 = events[0]["event_time"]
    out = []
    for e in events:
        e = dict(e, event_time=t0 + (e["event_time"] - t0) * factor)
        if e.get("scheduled_time") is not None:
            e["scheduled_time"] = t0 + (e["scheduled_time"] - t0) * factor
        if e["event_type"] == "ENROLLED":
            e["visit_interval_days"] *= factor
        out.append(e)
    return out


def test_schedule_features_read_any_protocol_scale_the_same():
    """Why the features are relative: a trial with visits twice as far apart, living the
    same story, gives the same schedule features (absolute day counts would differ)."""
    rows = {}
    for factor in (1, 2):
        state = None
        events = _stretched(history_factory(misses=2), factor)
        for event in events:
            state, _ = apply(state, event)
        rows[factor] = dict(
            zip(FEATURE_NAMES, features(state, events[-1]["event_time"]), strict=True)
        )
    relative = ("intervals_enrolled", "trial_progress", "visit_compliance", "missed_share",
                "intervals_since_last_visit", "visits_remaining", "consecutive_missed")  # fmt: skip
    for name in relative:
        assert rows[1][name] == rows[2][name], name
    assert rows[2]["days_since_last_epro"] == 2 * rows[1]["days_since_last_epro"]
    assert "visit_interval_days" not in FEATURE_NAMES and "planned_visits" not in FEATURE_NAMES


def test_every_feature_has_a_reason_text():
    for name in FEATURE_NAMES:
        assert reason_text(name, 1.0)
        assert "no data" in reason_text(name, float("nan"))


def test_two_chunkings_give_bitwise_identical_rows():
    events = simulate(SimulationConfig(seed=9, n_participants=300, n_trials=4)).events
    whole = build_rows(events)
    states: dict = {}
    parts = [
        build_rows(events[start : start + 997], states, offset=start)
        for start in range(0, len(events), 997)
    ]
    chunked = np.concatenate([p.X for p in parts])
    assert whole.X.tobytes() == chunked.tobytes()
    assert np.array_equal(whole.event_index, np.concatenate([p.event_index for p in parts]))
