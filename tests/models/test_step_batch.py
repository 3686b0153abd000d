"""``step_batch`` equals ``step`` called one event at a time: random interleavings
of several patients' histories, with duplicates, replayed latest events, ends,
events after the end and refused events, cut into random batch sizes."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.models.factories import DAY, T0, history_factory
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.exceptions import InvalidEventError, ModelError, NotEnrolledError
from trialwatch.models.pipeline import StepResult, _waves, step, step_batch
from trialwatch.models.recalibration import Calibration
from trialwatch.models.scorer import Scorer
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas.contract import normalize_event

POLICY = AlertPolicy(cooldown_days=14)


@pytest.fixture(scope="module")
def scorer(quick_model_dir):
    return Scorer.load(quick_model_dir)


def _extra(patient_id: str, n: int, kind: str, days: float, **fields) -> dict:
    return normalize_event(
        {"event_id": f"{patient_id}-x{n}", "patient_id": patient_id, "trial_id": "T1",
         "site_id": "S1", "event_type": kind, "event_time": T0 + int(days * DAY), **fields}
    )  # fmt: skip


def histories() -> list[list[dict]]:
    """Five patients; one withdraws and sends an event after the end, one sends a
    refused AE (grade 9), and a stranger sends a visit without enrolling."""
    patients = [history_factory(f"P{k}", misses=k) for k in range(5)]
    patients[1] += [_extra("P1", 1, "WITHDRAWN", 200), _extra("P1", 2, "EPRO_SUBMITTED", 210,
                                                               epro_score=50.0)]  # fmt: skip
    patients[2].insert(3, _extra("P2", 1, "ADVERSE_EVENT", 35, ae_grade=9, serious=False))
    patients.append([_extra("PX", 1, "VISIT_MISSED", 30, visit_number=1, scheduled_time=T0)])
    return patients


def interleave(patients: list[list[dict]], rng: random.Random) -> list[dict]:
    """A random merge that keeps each patient's order, plus re-deliveries: a copy
    right after an event (its replay, while it is the latest) or much later."""
    queues = [list(p) for p in patients]
    out: list[dict] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        out.append(queue.pop(0))
        if rng.random() < 0.15:
            out.append(dict(out[-1]))
        if rng.random() < 0.1:
            out.insert(rng.randrange(len(out) + 1), dict(rng.choice(out)))
    return out


def one_by_one(events, scorer, challenger=None) -> list[StepResult | ModelError]:
    """The reference: ``step`` per event, a refused event keeps the old state."""
    states: dict = {}
    out: list[StepResult | ModelError] = []
    for event in events:
        pid = event["patient_id"]
        try:
            result = step(states.get(pid), event, scorer, POLICY, challenger)
        except ModelError as exc:
            out.append(exc)
            continue
        states[pid] = result.state
        out.append(result)
    return out


def batched(events, sizes, scorer, challenger=None) -> list[StepResult | ModelError]:
    states: dict = {}
    out: list[StepResult | ModelError] = []
    start = 0
    for size in sizes:
        chunk = events[start : start + size]
        start += size
        results = step_batch(states, chunk, scorer, POLICY, challenger)
        for event, result in zip(chunk, results, strict=True):
            if isinstance(result, StepResult):
                states[event["patient_id"]] = result.state
        out.extend(results)
    assert start >= len(events)
    return out


def assert_same(expected: list, got: list) -> None:
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        if isinstance(a, ModelError):
            assert type(b) is type(a) and str(b) == str(a), i
            continue
        assert isinstance(b, StepResult), (i, b)
        assert (b.state, b.outcome, b.replayed) == (a.state, a.outcome, a.replayed), i
        assert (b.score, b.alert, b.shadow, b.matured) == (a.score, a.alert, a.shadow, a.matured), i
        assert (a.features is None) == (b.features is None), i
        if a.features is not None:
            assert np.array_equal(a.features, b.features, equal_nan=True), i


def sizes_for(n: int, rng: random.Random, largest: int) -> list[int]:
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(rng.randint(1, largest))
    return sizes


FIXTURE = [HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(seed=st.integers(0, 2**32 - 1), largest=st.sampled_from([1, 3, 8, 40]))
def test_random_interleavings_and_batch_sizes_equal_step_by_step(scorer, seed, largest):
    rng = random.Random(seed)
    events = interleave(histories(), rng)
    expected = one_by_one(events, scorer)
    assert_same(expected, batched(events, sizes_for(len(events), rng, largest), scorer))


def test_the_edge_cases_are_all_exercised(scorer):
    """The interleavings above do contain what they claim to cover."""
    rng = random.Random(3)
    events = interleave(histories(), rng)
    results = batched(events, [len(events)], scorer)  # one batch: many waves
    assert len(_waves(events)) >= 10
    errors = [r for r in results if isinstance(r, ModelError)]
    assert {type(e) for e in errors} == {InvalidEventError, NotEnrolledError}
    labels = {r.label for r in results if isinstance(r, StepResult)}
    assert {"scored", "ended", "after_end", "duplicate"} <= labels
    assert any(r.replayed for r in results if isinstance(r, StepResult))
    assert any(r.alert for r in results if isinstance(r, StepResult))
    assert_same(one_by_one(events, scorer), results)


def test_a_simulated_world_with_a_challenger_in_large_batches(scorer):
    events = simulate(PROFILES["demo"]).events[:3000]
    trial = min(e["trial_id"] for e in events)
    cal = Calibration(scorer.version, trial, f"{trial}.r1", 0.9, 1.1, scorer.tiers)
    challenger = scorer.with_calibrations({trial: cal})
    rng = random.Random(11)
    expected = one_by_one(events, scorer, challenger)
    got = batched(events, sizes_for(len(events), rng, 700), scorer, challenger)
    assert_same(expected, got)
    assert sum(1 for r in got if isinstance(r, StepResult) and r.alert) > 10
    assert sum(1 for r in got if isinstance(r, StepResult) and r.shadow) > 1000


def test_score_many_is_bitwise_score_one(scorer):
    events = simulate(PROFILES["demo"]).events[:2000]
    rows = [r for r in one_by_one(events, scorer) if isinstance(r, StepResult) and r.score]
    X = np.vstack([r.features for r in rows])
    states = [r.state for r in rows]
    ats = [r.score["event_time"] for r in rows]
    many = scorer.score_many(X, states, ats)
    one = [scorer.score_one(x, s, at) for x, s, at in zip(X, states, ats, strict=True)]
    assert many == one
    assert len({s.probability for s in many}) > 100


def test_step_batch_does_not_write_the_states_it_reads(scorer):
    events = history_factory("P9")
    states: dict = {}
    results = step_batch(states, events, scorer, POLICY)
    assert states == {}
    assert all(isinstance(r, StepResult) for r in results)
    assert results[-1].state.n_applied == len(events)
