"""The simulated world: deterministic, well-formed, causal, in published ranges."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from trialwatch.models.economics import PHASE_ECONOMICS, discount_factor
from trialwatch.producers.simulator import PROFILES, TARGET_DROPOUT, SimulationConfig, simulate
from trialwatch.producers.stats import label_base_rate, world_stats
from trialwatch.schemas.contract import MS_PER_DAY, validate_event

SMALL = SimulationConfig(seed=5, n_participants=600, n_trials=8)


@pytest.fixture(scope="module")
def quick_world():
    return simulate(PROFILES["quick"])


def _histories(world):
    by_patient = defaultdict(list)
    for i, event in enumerate(world.events):
        by_patient[event["patient_id"]].append((i, event))
    return by_patient


def test_same_seed_same_world_other_seed_other_world():
    a, b = simulate(SMALL), simulate(SMALL)
    assert a.events == b.events and a.fingerprint() == b.fingerprint()
    assert np.array_equal(a.hazard, b.hazard)
    assert simulate(replace(SMALL, seed=6)).fingerprint() != a.fingerprint()


def test_every_event_honours_the_contract_and_histories_are_well_formed(quick_world):
    times = [e["event_time"] for e in quick_world.events]
    assert times == sorted(times)
    for event in quick_world.events:
        validate_event(event)
    for patient_id, history in _histories(quick_world).items():
        kinds = [e["event_type"] for _, e in history]
        assert kinds[0] == "ENROLLED"
        terminal = [k for k in kinds if k in ("WITHDRAWN", "COMPLETED")]
        assert len(terminal) == 1, patient_id
        assert quick_world.outcome[patient_id] == terminal[0]
        numbers = [e["visit_number"] for _, e in history if e["visit_number"] is not None]
        assert len(numbers) == len(set(numbers))  # each visit resolved once (late ones may
        # be recorded after the next visit's: arrival order is not visit order)
    assert len({e["event_id"] for e in quick_world.events}) == len(quick_world.events)


def test_dropout_per_phase_lands_in_the_target_ranges(quick_world):
    stats = world_stats(quick_world)
    for phase, row in stats["dropout_by_phase"].items():
        low, high = TARGET_DROPOUT[phase]
        assert low <= row["dropout"] <= high, (phase, row)
    assert 0.6 < stats["retention"] < 0.9


def test_drivers_cause_dropout(quick_world):
    """Misses and severe adverse events precede more withdrawals."""
    misses, severe = defaultdict(int), set()
    for event in quick_world.events:
        if event["event_type"] == "VISIT_MISSED":
            misses[event["patient_id"]] += 1
        if event["event_type"] == "ADVERSE_EVENT" and event["ae_grade"] >= 3:
            severe.add(event["patient_id"])
    withdrew = {p: o == "WITHDRAWN" for p, o in quick_world.outcome.items()}

    def rate(patients):
        return np.mean([withdrew[p] for p in patients])

    everyone = list(withdrew)
    assert rate([p for p in everyone if misses[p] >= 2]) > 1.5 * rate(
        [p for p in everyone if misses[p] == 0]
    )
    assert rate([p for p in everyone if p in severe]) > 1.2 * rate(
        [p for p in everyone if p not in severe]
    )


def test_true_probability_separates_who_withdraws(quick_world):
    p = quick_world.true_probability(60)
    assert np.all((p >= 0) & (p <= 1))
    withdrawn_at = {
        e["patient_id"]: e["event_time"]
        for e in quick_world.events
        if e["event_type"] == "WITHDRAWN"
    }
    soon = np.array(
        [
            e["patient_id"] in withdrawn_at
            and e["event_time"] < withdrawn_at[e["patient_id"]] <= e["event_time"] + 60 * MS_PER_DAY
            for e in quick_world.events
        ]
    )
    assert p[soon].mean() > 2 * p[~soon].mean()
    assert 0.02 < label_base_rate(quick_world, 60) < 0.15


def test_remaining_value_is_the_discounted_value_delivered_afterwards():
    world = simulate(SMALL)
    for patient_id, history in list(_histories(world).items())[:40]:
        phase = history[0][1]["phase"]
        econ = PHASE_ECONOMICS[phase]
        for position, (i, event) in enumerate(history):
            expected = 0.0
            for _, later in history[position + 1 :]:
                days = (later["event_time"] - event["event_time"]) / MS_PER_DAY
                if later["event_type"] == "VISIT_COMPLETED":
                    expected += econ.visit_value * discount_factor(days, econ.annual_discount_rate)
                if later["event_type"] == "COMPLETED":
                    expected += econ.completion_value * discount_factor(
                        days, econ.annual_discount_rate
                    )
            assert world.remaining_value[i] == pytest.approx(expected, rel=1e-9), patient_id
