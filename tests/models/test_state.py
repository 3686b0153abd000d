"""PatientState: pure, idempotent, order-tolerant, bounded, strict about bad input."""

from __future__ import annotations

import copy
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.factories import DAY, history_factory
from trialwatch.models.exceptions import InvalidEventError, NotEnrolledError
from trialwatch.models.state import Outcome, apply, decode_state, encode_state, to_record


def replay(events, state=None):
    for event in events:
        state, _ = apply(state, event)
    return state


def test_apply_never_mutates_its_inputs():
    events = history_factory()
    frozen = copy.deepcopy(events)
    state = replay(events[:4])
    before = to_record(state)
    apply(state, events[4])
    assert events == frozen and to_record(state) == before


def test_the_same_event_twice_and_a_whole_replay_change_nothing():
    events = history_factory()
    state = replay(events)
    for event in events:
        again, outcome = apply(state, event)
        assert outcome is Outcome.DUPLICATE and again == state
    assert replay(events, state) == state


def test_out_of_order_within_the_window_gives_the_in_order_state():
    events = history_factory(misses=3)
    in_order = replay(events)
    rng = random.Random(1)
    for _ in range(20):
        shuffled = [events[0]]
        for start in range(1, len(events), 2):  # pairs: each spans < 30 days of event time
            block = events[start : start + 2]
            shuffled += rng.sample(block, len(block))
        assert replay(shuffled) == in_order


def test_events_after_the_end_are_recorded_not_applied():
    events = history_factory(misses=0)
    last = events[-1]
    state = replay(events)
    withdrawn = dict(
        last, event_id="w", event_type="WITHDRAWN", event_time=last["event_time"] + DAY
    )
    state, outcome = apply(state, withdrawn)
    assert outcome is Outcome.APPLIED and state.ended and state.end_type == "WITHDRAWN"
    late = dict(last, event_id="late", event_time=last["event_time"] + 2 * DAY)
    after, outcome = apply(state, late)
    assert outcome is Outcome.AFTER_END
    assert after.n_after_end == 1 and after.completed_visits == state.completed_visits
    assert apply(after, late)[1] is Outcome.DUPLICATE


def test_state_stays_small_however_long_the_history():
    events = history_factory(misses=0)
    state = replay(events)
    t = events[-1]["event_time"]
    for i in range(1000):
        t += DAY // 2
        state, _ = apply(state, dict(events[1], event_id=f"epro-{i}", event_time=t))
    data = encode_state(state)
    assert state.epro_count == 1002
    assert len(data) < 2048
    assert decode_state(data) == state


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"event_type": "TELEPORTED"}, InvalidEventError),
        ({"epro_score": math.nan}, InvalidEventError),
        ({"epro_score": None}, InvalidEventError),
        ({"event_id": ""}, InvalidEventError),
    ],
)
def test_invalid_events_raise_specific_errors(change, error):
    events = history_factory()
    state = replay(events[:1])
    with pytest.raises(error):
        apply(state, {**events[1], **change})


def test_events_before_enrolment_are_refused():
    with pytest.raises(NotEnrolledError):
        apply(None, history_factory()[2])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_random_sequences_never_crash_and_stay_idempotent(picks, rng):
    events = history_factory(misses=4)
    sequence = [events[0]] + [events[i % len(events)] for i in picks]
    tail = sequence[1:]
    rng.shuffle(tail)
    state = replay([sequence[0], *tail])
    assert replay(sequence, state) == state
