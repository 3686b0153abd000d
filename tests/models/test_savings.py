"""Savings on hand-made rows whose answers are worked out here, and the replayed
alerts against the stream's own per-event step on a simulated world."""

from __future__ import annotations

import numpy as np
import pytest

from trialwatch.models.alerts import TIER_RANK, AlertPolicy
from trialwatch.models.economics import REPLACEMENT_COST_USD
from trialwatch.models.savings import (
    EFFICACY_GRID,
    outreach,
    replay_alerts,
    savings_card,
    tier_ranks,
)
from trialwatch.models.tiers import CostAssumptions, Tiers

DAY = 86_400_000
C = REPLACEMENT_COST_USD  # 19,533
HIGH, CRITICAL = 600.0, 1_500.0


def ranks(*tiers: str) -> np.ndarray:
    return np.array([TIER_RANK[t] for t in tiers], dtype=np.int8)


def rows(*items: tuple[int, float, int, str]):
    """(patient, day, label, tier) per row -> the four arrays ``outreach`` takes."""
    patient, day, y, tier = zip(*items, strict=True)
    return np.array(patient), (np.array(day) * DAY).astype(np.int64), np.array(y), ranks(*tier)


def test_cooldown_suppresses_alerts_until_it_has_passed():
    # HIGH on days 0, 10, 29, 30, 45, 61: alerts on day 0, day 30 (30 >= 30 days after 0)
    # and day 61 (31 days after 30); 10, 29 and 45 fall inside a cooldown.
    p, t, y, r = rows(*((0, d, 0, "HIGH") for d in (0, 10, 29, 30, 45, 61)))
    alerted = replay_alerts(p, t, r, AlertPolicy(cooldown_days=30))
    assert (alerted >= 0).tolist() == [True, False, False, True, False, True]
    block = outreach(p, t, y, r)
    assert block["alerts"] == {"HIGH": 3, "CRITICAL": 0, "total": 3}
    assert block["outreach_cost_usd"] == 3 * HIGH
    assert block["preventable_withdrawals"] == 0
    assert block["net_savings_usd"] == pytest.approx(-1_800.0)


def test_escalation_alerts_inside_the_cooldown_and_resets_it():
    # day 0 HIGH: alert; day 5 CRITICAL: escalation, alert; day 10 CRITICAL: same tier,
    # cooldown; day 20 HIGH: lower, cooldown; day 36 HIGH: 31 days after day 5, alert.
    p, t, y, r = rows(
        (0, 0, 0, "HIGH"),
        (0, 5, 0, "CRITICAL"),
        (0, 10, 0, "CRITICAL"),
        (0, 20, 0, "HIGH"),
        (0, 36, 0, "HIGH"),
    )
    alerted = replay_alerts(p, t, r, AlertPolicy())
    assert alerted.tolist() == [2, 3, -1, -1, 2]
    block = outreach(p, t, y, r)
    assert block["alerts"] == {"HIGH": 2, "CRITICAL": 1, "total": 3}
    assert block["outreach_cost_usd"] == 2 * HIGH + CRITICAL


def test_low_and_medium_never_alert_and_rows_are_walked_in_event_time_order():
    # given out of order: the day-40 HIGH row comes first but the day-0 one alerts first,
    # so day 40 (>= 30 days later) alerts too; MEDIUM and LOW never do.
    p, t, _, r = rows((0, 40, 0, "HIGH"), (0, 0, 0, "HIGH"), (0, 20, 0, "MEDIUM"), (1, 0, 0, "LOW"))
    assert replay_alerts(p, t, r, AlertPolicy()).tolist() == [2, 2, -1, -1]
    # the same day-40 row within 30 days of an alert on day 15 would not
    p, t, _, r = rows((0, 40, 0, "HIGH"), (0, 15, 0, "HIGH"))
    assert replay_alerts(p, t, r, AlertPolicy()).tolist() == [-1, 2]


def test_a_withdrawal_is_preventable_once_and_only_by_an_alert_within_the_horizon():
    # participant 0: two alerts on positive rows (days 0 and 35), one withdrawal: 1.
    # participant 1: alert on a negative row only (withdrew later, beyond the horizon): 0.
    # participant 2: positive rows but only MEDIUM: no alert, not preventable.
    p, t, y, r = rows(
        (0, 0, 1, "HIGH"),
        (0, 35, 1, "HIGH"),
        (1, 0, 0, "CRITICAL"),
        (1, 70, 1, "LOW"),
        (2, 0, 1, "MEDIUM"),
    )
    block = outreach(p, t, y, r)
    assert block["preventable_withdrawals"] == 1
    assert block["withdrawals"] == 3  # participants with a positive row
    assert block["outreach_cost_usd"] == 2 * HIGH + CRITICAL
    assert block["net_savings_usd"] == pytest.approx(0.3 * C - 2_700.0)  # 3,159.90


def test_efficacy_zero_costs_exactly_the_outreach():
    p, t, y, r = rows((0, 0, 1, "CRITICAL"), (1, 0, 1, "HIGH"))
    block = outreach(p, t, y, r, costs=CostAssumptions(efficacy=0.0))
    assert block["preventable_withdrawals"] == 2
    assert block["net_savings_usd"] == -(HIGH + CRITICAL)
    assert block["per_1000"]["net_savings_usd"] == -(HIGH + CRITICAL) * 500


def test_per_1000_scaling_sensitivity_and_break_even():
    # one preventable withdrawal and one HIGH alert among 4 participants (2 with no rows
    # here, passed explicitly): per 1,000 = x 250.
    p, t, y, r = rows((0, 0, 1, "HIGH"), (1, 0, 0, "LOW"))
    block = outreach(p, t, y, r, participants=4, withdrawals=2)
    assert block["participants"] == 4 and block["withdrawals"] == 2
    per = block["per_1000"]
    assert per["alerts"] == 250
    assert per["outreach_cost_usd"] == 250 * HIGH
    assert per["preventable_withdrawals"] == 250
    assert per["withdrawals"] == 500
    assert per["expected_prevented_withdrawals"] == pytest.approx(75.0)
    assert per["net_savings_usd"] == pytest.approx(250 * (0.3 * C - HIGH))  # 1,314,975
    table = block["net_savings_per_1000_by_efficacy"]
    assert list(table) == [f"{e:g}" for e in EFFICACY_GRID] == ["0.1", "0.2", "0.3", "0.4", "0.5"]
    for e in EFFICACY_GRID:
        assert table[f"{e:g}"] == pytest.approx(250 * (e * C - HIGH))
    assert block["break_even_efficacy"] == pytest.approx(600 / 19_533)
    at_break_even = CostAssumptions(efficacy=block["break_even_efficacy"])
    assert outreach(p, t, y, r, costs=at_break_even)["net_savings_usd"] == pytest.approx(0.0)


def test_no_preventable_withdrawal_has_no_break_even():
    p, t, y, r = rows((0, 0, 0, "HIGH"))
    assert outreach(p, t, y, r)["break_even_efficacy"] is None


def test_the_card_section_puts_a_naive_policy_beside_the_model():
    # naive: every row HIGH, so participant 1 (LOW, positive) is reached too; day 10 of
    # participant 0 is inside the cooldown of day 0.
    p, t, y, r = rows((0, 0, 0, "CRITICAL"), (0, 10, 1, "LOW"), (1, 0, 1, "LOW"))
    card = savings_card(p, t, y, r, horizon_days=60)
    assert card["model"]["outreach_cost_usd"] == CRITICAL
    assert card["model"]["preventable_withdrawals"] == 0
    naive = card["naive_everyone_high_every_cooldown"]
    assert naive["alerts"]["total"] == 2 and naive["outreach_cost_usd"] == 2 * HIGH
    assert naive["preventable_withdrawals"] == 1
    assert "60 days" in card["definition"] and "Gillies" in card["assumptions"]["efficacy_source"]
    assert "19,533" in card["assumptions"]["replacement_cost_source"]
    assert "$258K" in card["seed_claim_comparison"]


def test_tier_ranks_are_the_tiers_own_tier():
    tiers = Tiers({"MEDIUM": 0.1, "HIGH": 0.3, "CRITICAL": 0.6}, {}, {})
    p = np.array([0.0, 0.0999, 0.1, 0.29, 0.3, 0.59, 0.6, 1.0])
    assert tier_ranks(p, tiers.thresholds).tolist() == [TIER_RANK[tiers.tier(x)] for x in p]


def test_replayed_alerts_are_the_streams_alerts(quick_model_dir):
    """The per-event step the stream runs (models.pipeline.step) on a simulated world,
    and ``replay_alerts`` on the same world's rows, alert on the same events."""
    from trialwatch.models.features import build_rows
    from trialwatch.models.pipeline import step
    from trialwatch.models.scorer import Scorer
    from trialwatch.producers.simulator import SimulationConfig, simulate

    scorer = Scorer.load(quick_model_dir)
    events = simulate(SimulationConfig(seed=5, n_participants=300, n_trials=4)).events
    policy = AlertPolicy()
    states: dict = {}
    streamed = {}
    for i, event in enumerate(events):
        result = step(states.get(event["patient_id"]), event, scorer, policy)
        states[event["patient_id"]] = result.state
        if result.alert is not None:
            streamed[i] = result.alert["tier"]
    rowset = build_rows(events)
    _, patient = np.unique(rowset.patient_id, return_inverse=True)
    rank = tier_ranks(scorer.probabilities(rowset.X), scorer.tiers.thresholds)
    alerted = replay_alerts(patient, rowset.event_time, rank, policy)
    replayed = {
        int(rowset.event_index[k]): ("LOW", "MEDIUM", "HIGH", "CRITICAL")[alerted[k]]
        for k in np.flatnonzero(alerted >= 0)
    }
    assert len(streamed) >= 20
    assert replayed == streamed
