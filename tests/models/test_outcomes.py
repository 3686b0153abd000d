"""Open predictions and their maturity (models.outcomes) through the real pipeline."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace

import pytest

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.outcomes import OPEN_RING, SLOT_DAYS, mature, record
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import encode_state
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas.contract import MS_PER_DAY

H = 60


@pytest.fixture(scope="module")
def world():
    return simulate(replace(PROFILES["demo"], seed=11))


@pytest.fixture(scope="module")
def scorer(quick_model_dir) -> Scorer:
    return Scorer.load(quick_model_dir)


def _replay(events, scorer, states=None):
    records = ((i, e, None) for i, e in enumerate(events))
    return list(backfill_events(records, scorer, AlertPolicy(), states))


def test_matured_labels_are_the_training_labels(world, scorer) -> None:
    withdrawn = {
        e["patient_id"]: e["event_time"] for e in world.events if e["event_type"] == "WITHDRAWN"
    }
    matured = 0
    for rec in _replay(world.events, scorer):
        patient = world.events[rec.number]["patient_id"]
        for outcome in rec.matured:
            w = withdrawn.get(patient)
            t = outcome.predicted_at
            assert outcome.label == int(w is not None and t < w <= t + H * MS_PER_DAY)
            matured += 1
    assert matured > 1000


def test_a_finished_world_matures_every_prediction_and_state_stays_small(world, scorer) -> None:
    states: dict = {}
    _replay(world.events, scorer, states)
    assert states and all(s.ended for s in states.values())
    assert all(s.open_predictions == () for s in states.values())
    # Mid-way, the open predictions are bounded and one per slot.
    states = {}
    half = world.events[: len(world.events) // 2]
    _replay(half, scorer, states)
    opened = [s.open_predictions for s in states.values() if s.open_predictions]
    assert opened
    for predictions in opened:
        assert len(predictions) <= OPEN_RING
        times = [p[0] for p in predictions]
        assert all(b - a >= SLOT_DAYS * MS_PER_DAY for a, b in itertools.pairwise(times))
        assert {p[3] for p in predictions} == {scorer.version}
    assert max(len(encode_state(s)) for s in states.values()) <= 2048


def test_events_delivered_twice_mature_the_same_outcomes(world, scorer) -> None:
    def matured(events):
        return Counter(o for rec in _replay(events, scorer) for o in rec.matured)

    once = matured(world.events)
    twice = matured([e for event in world.events for e in (event, event)])
    assert sum(once.values()) > 1000
    assert twice == once


def test_maturity_rules() -> None:
    day = MS_PER_DAY
    open_ = ((0, 0.1, 1, "v"), (30 * day, 0.2, 2, "v"))
    kept, done = mature(open_, "EPRO_SUBMITTED", 61 * day, H)
    assert [o.predicted_at for o in done] == [0] and done[0].label == 0
    assert kept == open_[1:]
    _, done = mature(open_, "WITHDRAWN", 61 * day, H)
    assert [o.label for o in done] == [0, 1]  # 61 days after the first: too late for it
    _, done = mature(open_, "COMPLETED", 31 * day, H)
    assert [o.label for o in done] == [0, 0]
    assert mature(open_, "VISIT_COMPLETED", 50 * day, H) == (open_, ())
    assert record(open_, (33 * day, 0.3, 2, "v")) is open_  # within a slot of 30
    assert len(record(open_, (40 * day, 0.3, 2, "v"))) == 3


def test_each_version_has_its_own_slots_and_ring():
    """A shadow challenger's predictions open beside the champion's, bounded apiece."""
    from trialwatch.models.outcomes import OPEN_RING, SLOT_DAYS, record

    ring: tuple = ()
    day = 86_400_000
    for k in range(OPEN_RING + 3):
        at = k * SLOT_DAYS * day
        ring = record(ring, (at, 0.1, 1, "champion"))
        ring = record(ring, (at + day, 0.2, 1, "challenger"))
        ring = record(ring, (at + 2 * day, 0.3, 1, "champion"))  # same slot: not recorded
    versions = [v for *_, v in ring]
    assert versions.count("champion") == versions.count("challenger") == OPEN_RING
    assert [t for t, *_ in ring] == sorted(t for t, *_ in ring)
