"""Reasons in both directions (what raises and what lowers the risk), and what a
screen may show of them."""

from __future__ import annotations

import math

from trialwatch.models.features import FEATURE_NAMES, N_FEATURES
from trialwatch.models.reasons import ENROLMENT_FEATURES, shown_text, two_sided


def _row(**contributions: float) -> list[float]:
    contrib = [0.0] * (N_FEATURES + 1)
    for name, value in contributions.items():
        contrib[FEATURE_NAMES.index(name)] = value
    contrib[N_FEATURES] = -2.5  # the expected value (bias)
    return contrib


def test_two_sided_splits_by_sign_and_orders_by_size():
    x = [0.0] * N_FEATURES
    x[FEATURE_NAMES.index("consecutive_missed")] = 2.0
    x[FEATURE_NAMES.index("visit_compliance")] = 0.95
    contrib = _row(
        consecutive_missed=0.8, unreached_30d=0.3, missed_last3=0.5, ae_per_30d=0.1,
        visit_compliance=-0.9, epro_last=-0.2, trial_progress=-0.4,
    )  # fmt: skip
    both = two_sided(contrib, x, k=3)
    assert [r["feature"] for r in both["raising"]] == [
        "consecutive_missed", "missed_last3", "unreached_30d",
    ]  # fmt: skip
    assert [r["feature"] for r in both["lowering"]] == [
        "visit_compliance", "trial_progress", "epro_last",
    ]  # fmt: skip
    assert both["raising"][0]["contribution"] == 0.8
    assert both["raising"][0]["text"] == "missed the last 2 visit(s) in a row"
    assert both["lowering"][0]["text"] == "attended 95% of the visits expected by now"
    assert both["base_log_odds"] == -2.5
    # contributions + bias = the log-odds: nothing is lost by the split
    assert math.isclose(sum(contrib), 0.8 + 0.3 + 0.5 + 0.1 - 0.9 - 0.2 - 0.4 - 2.5)


def test_a_low_score_can_answer_with_no_raising_reason():
    both = two_sided(_row(visit_compliance=-1.2), [0.0] * N_FEATURES, k=3)
    assert both["raising"] == []  # zero contributions are in neither list
    assert [r["feature"] for r in both["lowering"]] == ["visit_compliance"]


def test_enrolment_attributes_are_named_never_shown():
    for feature in ENROLMENT_FEATURES:
        text = shown_text(feature, 57.0)
        assert "57" not in text and "enrolment attribute" in text
    assert shown_text("missed_last3", 2.0) == "missed 2 of the last 3 visits"


def test_explain_both_agrees_with_explain(quick_model_dir):
    from tests.models.test_training import _rows_and_states
    from trialwatch.models.scorer import Scorer

    scorer = Scorer.load(quick_model_dir)
    rows, _ = _rows_and_states()
    x = rows.X[50]
    both = scorer.explain_both(x, k=3)
    raising = [r for r in scorer.explain(x, k=3) if r["contribution"] > 0]
    key = lambda r: (r["feature"], r["contribution"], r["text"])  # noqa: E731  (NaN values)
    assert [key(r) for r in both["raising"]] == [key(r) for r in raising]
    assert both["lowering"] and all(r["contribution"] < 0 for r in both["lowering"])
