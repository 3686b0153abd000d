"""The trained quick model against its oracle and baselines (loose bounds: the quick
worlds are small; the issue note quotes the full profile).

The quick model trains on a family of randomized worlds, so its own test split
mixes worlds whose baseline hazard it cannot see (the oracle can): the PR-AUC
bound against the oracle is 0.85, not the 0.90 goal that shifted worlds are
held to where the model is at its best."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from trialwatch.models.artifacts import resolve
from trialwatch.models.exceptions import ArtifactError, ModelError
from trialwatch.models.features import N_FEATURES, build_rows
from trialwatch.models.scorer import Scorer
from trialwatch.models.training import CHURN_PARAMS
from trialwatch.producers.simulator import SimulationConfig, simulate
from trialwatch.producers.training_sets import FAMILY_PARAMS


@pytest.fixture(scope="module")
def card(quick_model_dir):
    return json.loads((resolve(quick_model_dir) / "model_card.json").read_text())


@pytest.fixture(scope="module")
def scorer(quick_model_dir):
    return Scorer.load(quick_model_dir)


def test_model_reaches_most_of_the_oracle(card):
    m = card["test_metrics"]
    assert m["lightgbm"]["roc_auc"] >= 0.95 * m["oracle"]["roc_auc"]
    assert m["lightgbm"]["pr_auc"] >= 0.85 * m["oracle"]["pr_auc"]


def test_card_scores_the_model_on_shifted_worlds_against_their_oracles(card):
    """Discrimination transfers to worlds built otherwise; calibration-in-the-large
    transfers where the baseline hazard is the training family's (a world's baseline
    hazard is invisible in a participant's history: per-trial recalibration's job)."""
    shifted = {k: v for k, v in card["transfer"].items() if k != "test split"}
    assert len(shifted) >= 2
    for name, row in shifted.items():
        assert row["data"]["parameters"], name
        assert row["roc_auc_ratio"] >= 0.95, name
        assert row["pr_auc_ratio"] >= 0.80, name
        assert 0.4 <= row["calibration_in_the_large"] <= 2.0, name
    nominal = next(v for k, v in shifted.items() if k.startswith("nominal"))
    assert 0.75 <= nominal["calibration_in_the_large"] <= 1.25
    assert nominal["pr_auc_ratio"] >= 0.85


def test_model_is_calibrated_and_beats_both_baselines(card):
    m = card["test_metrics"]
    assert 0.8 <= m["lightgbm"]["calibration_slope"] <= 1.2
    assert m["lightgbm"]["pr_auc"] > m["logistic_regression"]["pr_auc"]
    assert m["lightgbm"]["pr_auc"] > m["one_rule_intervals_since_last_visit"]["pr_auc"]


def test_card_records_the_lightgbm_params_the_profile_trained_with(card):
    assert card["model"]["params"] == {**CHURN_PARAMS, **FAMILY_PARAMS.get("quick", {})}


def test_clv_is_calibrated_by_decile(card):
    ratios = [row["ratio"] for row in card["clv_decile_calibration"]]
    assert len(ratios) == 10
    assert all(0.85 <= r <= 1.15 for r in ratios), ratios


def test_tiers_increase_and_sit_near_their_break_even(card):
    t = card["tiers"]["thresholds"]
    assert 0 < t["MEDIUM"] < t["HIGH"] < t["CRITICAL"] < 1
    for tier in ("MEDIUM", "HIGH"):
        assert (
            card["tiers"]["break_even"][tier] / 3 < t[tier] < 3 * card["tiers"]["break_even"][tier]
        )
    recall = {k: v["recall"] for k, v in card["tiers"]["at_test"].items()}
    assert recall["MEDIUM"] >= recall["HIGH"] >= recall["CRITICAL"] > 0


def test_card_savings_are_consistent_per_1000_test_participants(card):
    """net = efficacy x preventable x replacement cost - outreach, on the test split's
    participants, scaled to 1,000; the break-even efficacy nets zero."""
    savings = card["savings"]
    c = savings["assumptions"]["replacement_cost_usd"]
    assert c == 19_533.0 and savings["assumptions"]["efficacy"] == 0.3
    assert "Gillies et al. 2021" in savings["assumptions"]["efficacy_source"]
    for name in ("model", "naive_everyone_high_every_cooldown"):
        block = savings[name]
        assert block["participants"] == card["data"]["patients"]["test"]
        alerts, usd = block["alerts"], savings["assumptions"]["outreach_usd"]
        assert alerts["total"] == alerts["HIGH"] + alerts["CRITICAL"] > 0
        outreach = alerts["HIGH"] * usd["HIGH"] + alerts["CRITICAL"] * usd["CRITICAL"]
        assert block["outreach_cost_usd"] == pytest.approx(outreach)
        prevent = block["preventable_withdrawals"]
        assert 0 < prevent <= block["withdrawals"] <= block["participants"]
        assert block["net_savings_usd"] == pytest.approx(0.3 * prevent * c - outreach)
        scale = 1_000 / block["participants"]
        per = block["per_1000"]
        assert per["net_savings_usd"] == pytest.approx((0.3 * prevent * c - outreach) * scale)
        assert per["alerts"] == pytest.approx(alerts["total"] * scale)
        assert per["outreach_cost_usd"] == pytest.approx(outreach * scale)
        table = block["net_savings_per_1000_by_efficacy"]
        assert list(table) == ["0.1", "0.2", "0.3", "0.4", "0.5"]
        for e, net in table.items():
            assert net == pytest.approx((float(e) * prevent * c - outreach) * scale)
        assert block["break_even_efficacy"] * prevent * c == pytest.approx(outreach)
    # the tiers alert fewer participants' rows than outreach to everyone, for less money
    model, naive = savings["model"], savings["naive_everyone_high_every_cooldown"]
    assert model["outreach_cost_usd"] < naive["outreach_cost_usd"]
    assert model["preventable_withdrawals"] <= naive["preventable_withdrawals"]


def test_artifact_is_plain_text_and_json_never_pickle(quick_model_dir):
    version = resolve(quick_model_dir)
    for path in version.iterdir():
        head = path.read_bytes()[:2]
        assert head != b"\x80\x04" and head[:1] != b"\x80", f"{path.name} looks like a pickle"
    assert (version / "model.txt").read_text().startswith("tree")
    for plot in ("shap_summary.png", "reliability.png", "pr_curve.png"):
        assert (version / plot).stat().st_size > 1000


def test_scorer_refuses_incomplete_or_mismatched_artifacts(quick_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(resolve(quick_model_dir), broken)
    (broken / "features.json").write_text(json.dumps(["something", "else"]))
    with pytest.raises(ArtifactError, match="other features"):
        Scorer.load(broken)
    (broken / "retention.json").unlink()
    with pytest.raises(ArtifactError, match=r"missing retention\.json"):
        Scorer.load(broken)
    with pytest.raises(ArtifactError):
        Scorer.load(tmp_path / "nothing-here")


def _rows_and_states():
    from trialwatch.models.state import apply

    events = simulate(SimulationConfig(seed=21, n_participants=60, n_trials=3)).events
    rows = build_rows(events)
    states, snapshot = {}, {}
    for i, event in enumerate(events):
        states[event["patient_id"]], _ = apply(states.get(event["patient_id"]), event)
        snapshot[i] = states[event["patient_id"]]
    return rows, [snapshot[int(i)] for i in rows.event_index]


def test_batch_and_single_row_scores_are_identical(scorer):
    rows, states = _rows_and_states()
    batch = scorer.score_many(rows.X[:200], states[:200], rows.event_time[:200].tolist())
    for i in range(0, 200, 17):
        single = scorer.score_one(rows.X[i], states[i], int(rows.event_time[i]))
        assert single == batch[i]
    s = batch[0]
    assert 0 <= s.probability <= 1 and s.clv >= 0 and s.value_at_risk >= 0
    assert list(s.retention) == sorted(s.retention, reverse=True)


def test_explanations_are_exact_treeshap(scorer):
    rows, _ = _rows_and_states()
    x = rows.X[50]
    reasons = scorer.explain(x, k=3)
    assert len(reasons) == 3 and all(r["text"] for r in reasons)
    contrib = scorer.churn.predict(x.reshape(1, -1), pred_contrib=True)[0]
    raw = scorer.churn.predict(x.reshape(1, -1), raw_score=True)[0]
    assert contrib.sum() == pytest.approx(raw, abs=1e-9)  # SHAP values + bias = log-odds
    top = max(range(N_FEATURES), key=lambda i: contrib[i])
    assert reasons[0]["contribution"] == pytest.approx(contrib[top])


def test_rows_of_the_wrong_shape_are_refused(scorer):
    with pytest.raises(ModelError):
        scorer.probabilities(np.zeros((1, N_FEATURES - 1)))
