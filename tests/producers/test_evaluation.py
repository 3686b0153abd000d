"""``trialwatch evaluate`` offline: known answers on shifted worlds, PSI, bad lines."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.scorer import Scorer
from trialwatch.producers.evaluation import evaluate_events, evaluate_file
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate

WHOLE = 10_000  # weeks: the whole history in one window


def _evaluate(events, scorer):
    records = ((i, e, None) for i, e in enumerate(events))
    return evaluate_events(records, scorer, AlertPolicy(), window_weeks=WHOLE, drift_weeks=WHOLE)


@pytest.fixture(scope="module")
def scorer(quick_model_dir) -> Scorer:
    return Scorer.load(quick_model_dir)


def _world(**changes):
    return simulate(replace(PROFILES["quick"], seed=5, n_participants=1500, **changes)).events


def _all_rows_calibration(events, scorer) -> float:
    """Mean probability / label rate over every training-style row: the check the
    monitor's sampled, matured predictions must agree with."""
    from trialwatch.models.dataset import collect

    table = collect(((i + 1, e, None) for i, e in enumerate(events)), 60)
    known = table.observed
    return float(scorer.probabilities(table.X[known]).mean() / table.y[known].mean())


def test_calibration_reports_a_shifted_hazard_and_not_an_unshifted_world(scorer) -> None:
    worlds = {"unshifted": _world(), "hazard x2": _world(hazard_scale=2.0)}
    realized = {}
    for name, events in worlds.items():
        m = _evaluate(events, scorer).report()["realized_all_trials"][0]
        realized[name] = m
        direct = _all_rows_calibration(events, scorer)
        print(f"{name}: calibration-in-the-large {m['calibration_in_the_large']:.3f} "
              f"(all rows: {direct:.3f}), ROC-AUC {m['roc_auc']:.3f}")  # fmt: skip
        assert m["n"] > 10_000
        assert m["calibration_in_the_large"] == pytest.approx(direct, rel=0.1)
        assert m["roc_auc"] > 0.7  # it still ranks
    same, doubled = realized["unshifted"], realized["hazard x2"]
    assert 0.8 <= same["calibration_in_the_large"] <= 1.3
    assert doubled["calibration_in_the_large"] < 0.65 * same["calibration_in_the_large"]
    assert doubled["realized_rate"] > 1.4 * same["realized_rate"]


def test_psi_flags_a_shifted_feature_and_not_one_left_alone(scorer) -> None:
    events = _world()
    farther = [
        dict(e, distance_km=e["distance_km"] * 3) if e["event_type"] == "ENROLLED" else e
        for e in events
    ]
    before = _evaluate(events, scorer).report()["drift"]
    after = _evaluate(farther, scorer).report()["drift"]
    trial = max(after, key=lambda t: after[t]["rows"])
    assert after[trial]["rows"] >= 200
    assert after[trial]["flags"].get("distance_km") == "major"
    assert after[trial]["psi"]["distance_km"] > 3 * before[trial]["psi"]["distance_km"]
    # The feature left alone keeps its PSI (the training family is wider in age than
    # any one world, so its level is not zero) and its flag.
    assert after[trial]["psi"]["age"] == pytest.approx(before[trial]["psi"]["age"], abs=1e-9)
    assert after[trial]["flags"].get("age") == before[trial]["flags"].get("age")
    assert after[trial]["psi"]["age"] < after[trial]["psi"]["distance_km"] / 3


def test_a_bad_line_is_counted_and_the_rest_is_evaluated(scorer, quick_model_dir, tmp_path) -> None:
    events = simulate(PROFILES["demo"]).events
    path = tmp_path / "history.jsonl"
    write_jsonl(events, path)
    with open(path, "a") as out:
        out.write("{not json\n")
    report = evaluate_file(path, quick_model_dir, AlertPolicy())
    assert report["records"] == len(events) + 1 and report["rejected"] == 1
    assert sum(row["n"] for row in report["realized"]) > 0
    json.dumps(report, allow_nan=False)  # the --json output is valid JSON
