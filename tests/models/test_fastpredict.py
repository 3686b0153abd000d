"""The C-API prediction path returns exactly what LightGBM's wrapper returns."""

from __future__ import annotations

import numpy as np

from trialwatch.models.fastpredict import PREDICT_RAW, FastPredictor
from trialwatch.models.features import N_FEATURES
from trialwatch.models.scorer import Scorer


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 20, size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take LightGBM's default branch
    return X


def test_fast_path_equals_booster_predict(quick_model_dir):
    booster = Scorer.load(quick_model_dir).churn
    X = _rows(3_000)
    np.testing.assert_array_equal(FastPredictor(booster).predict(X), booster.predict(X))
    for row in X[:200]:  # the per-event shape
        one = row.reshape(1, -1)
        assert FastPredictor(booster).predict(one)[0] == booster.predict(one)[0]
    raw = FastPredictor(booster, PREDICT_RAW).predict(X)
    np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))


def test_fast_path_accepts_non_contiguous_views(quick_model_dir):
    booster = Scorer.load(quick_model_dir).churn
    X = np.asfortranarray(_rows(100, seed=1))
    np.testing.assert_array_equal(FastPredictor(booster).predict(X), booster.predict(X))
    strided = _rows(200, seed=2)[::2]
    np.testing.assert_array_equal(FastPredictor(booster).predict(strided), booster.predict(strided))


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
