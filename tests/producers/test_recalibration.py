"""Recalibration on a shifted trial, end to end through the step function (no Kafka).

The acceptance of the lifecycle issue, measured with the functions the worker
runs: the first months of a trial the model was not built for are replayed,
``trialwatch recalibrate`` fits the trial's map, and the later months, scored
through it, are calibrated while their ranking is what the model alone gives.
"""

from __future__ import annotations

import copy

import pytest

from tests.worlds import SHIFTED_TRIAL, split_months
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.monitoring import OutcomeWindow
from trialwatch.models.scorer import Scorer
from trialwatch.producers.backfill import backfill_events
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.recalibration import recalibrate_file
from trialwatch.producers.simulator import simulate

POLICY = AlertPolicy()


def later_window(events, scorer, states, since: int) -> OutcomeWindow:
    """Matured outcomes of the predictions made at or after ``since``."""
    window = OutcomeWindow("later", "T", window_weeks=520)
    records = ((i, e, None) for i, e in enumerate(events))
    for rec in backfill_events(records, scorer, POLICY, states):
        for outcome in rec.matured:
            if outcome.predicted_at >= since:
                window.add(outcome)
    return window


def test_recalibration_fixes_a_shifted_trial_and_keeps_its_ranking(quick_model_dir, tmp_path):
    world = simulate(SHIFTED_TRIAL)
    first, later, cut = split_months(world.events)
    (trial,) = {e["trial_id"] for e in world.events}
    write_jsonl(first, tmp_path / "first.jsonl")
    result = recalibrate_file(tmp_path / "first.jsonl", quick_model_dir, trial, POLICY)
    cal = result["proposal"].calibration
    assert cal is not None, result["proposal"].reason
    report = result["proposal"].report
    assert report["held_out"]["brier_after"] < report["held_out"]["brier_before"]
    assert report["after"]["calibration_in_the_large"] == pytest.approx(1.0, abs=0.02)

    scorer = Scorer.load(quick_model_dir)
    states: dict = {}
    for _ in backfill_events(((i, e, None) for i, e in enumerate(first)), scorer, POLICY, states):
        pass
    alone = later_window(later, scorer, copy.deepcopy(states), cut).metrics()
    mapped = later_window(later, scorer.with_calibrations({trial: cal}), states, cut).metrics()

    print(f"later months: model alone {alone}, recalibrated {mapped}")
    assert alone["positives"] >= 1_000 and mapped["positives"] >= 1_000
    assert abs(alone["calibration_in_the_large"] - 1) >= 0.5 / 1.5  # >= 1.5x off
    assert mapped["calibration_in_the_large"] == pytest.approx(1.0, abs=0.1)
    assert mapped["roc_auc"] >= alone["roc_auc"] - 0.002  # binned: a map moves bins
    assert mapped["brier"] < alone["brier"]
