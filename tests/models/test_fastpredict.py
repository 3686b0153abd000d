"""The C-API prediction path returns exactly what LightGBM's wrapper returns.

Every comparison goes through ``_fast``: a predictor whose fallback to
``Booster.predict`` fails the test, so equality proves the C path, not the wrapper.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from trialwatch.models.fastpredict import PREDICT_NORMAL, PREDICT_RAW, FastPredictor
from trialwatch.models.features import N_FEATURES
from trialwatch.models.scorer import Scorer


def _fast(booster: lgb.Booster, predict_type: int = PREDICT_NORMAL) -> FastPredictor:
    """A FastPredictor that must take the C path: any fallback fails the test."""
    predictor = FastPredictor(booster, predict_type)
    assert predictor._call is not None, "the fast path is unavailable: it fell back at load"

    def no_fallback(X: np.ndarray) -> np.ndarray:
        raise AssertionError("FastPredictor fell back to Booster.predict")

    predictor._fallback = no_fallback
    return predictor


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 20, size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take LightGBM's default branch
    return X


def test_fast_path_equals_booster_predict(quick_model_dir):
    booster = Scorer.load(quick_model_dir).churn
    X = _rows(3_000)
    np.testing.assert_array_equal(_fast(booster).predict(X), booster.predict(X))
    for row in X[:200]:  # the per-event shape
        one = row.reshape(1, -1)
        assert _fast(booster).predict(one)[0] == booster.predict(one)[0]
    raw = _fast(booster, PREDICT_RAW).predict(X)
    np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))


def test_fast_path_accepts_non_contiguous_views(quick_model_dir):
    booster = Scorer.load(quick_model_dir).churn
    X = np.asfortranarray(_rows(100, seed=1))
    np.testing.assert_array_equal(_fast(booster).predict(X), booster.predict(X))
    strided = _rows(200, seed=2)[::2]
    np.testing.assert_array_equal(_fast(booster).predict(strided), booster.predict(strided))


def test_single_row_scores_equal_batch_scores(quick_model_dir):
    """The per-event path and the batch path give identical scores."""
    from trialwatch.models.features import features
    from trialwatch.models.state import apply
    from trialwatch.producers.simulator import PROFILES, simulate

    scorer = Scorer.load(quick_model_dir)
    states, rows, seen = {}, [], []
    for event in simulate(PROFILES["demo"]).events[:3_000]:
        state, _ = apply(states.get(event["patient_id"]), event)
        states[event["patient_id"]] = state
        if not state.ended:
            rows.append(features(state, event["event_time"]))
            seen.append((state, event["event_time"]))
    X = np.array(rows)
    batch = scorer.score_many(X, [s for s, _ in seen], [t for _, t in seen])
    for x, (state, at), b in zip(X, seen, batch, strict=True):
        assert scorer.score_one(x, state, at) == b


def test_the_scorer_predicts_through_the_fast_path(quick_model_dir):
    scorer = Scorer.load(quick_model_dir)
    predictor = scorer._predict.__self__
    assert isinstance(predictor, FastPredictor) and predictor._call is not None
