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
    assert row["missed_visits"] == 2 and row["consecutive_missed"] == 2
    assert row["missed_last3"] == 2
    assert row["ae_max_grade"] == 3
    assert row["epro_change"] == -25.0
    assert row["unreached_contacts"] == 2 and row["consecutive_unreached"] == 2
    assert reason_text("missed_last3", row["missed_last3"]) == "missed 2 of the last 3 visits"


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
