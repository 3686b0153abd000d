"""Evaluation metrics for the model card (training time only)."""

from __future__ import annotations

import numpy as np


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Slope of a logistic regression of the outcome on logit(p): 1 is ideal."""
    from sklearn.linear_model import LogisticRegression

    q = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(q / (1 - q)).reshape(-1, 1)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(model.coef_[0, 0])


def binary_metrics(y: np.ndarray, score: np.ndarray, probabilities: bool = True) -> dict:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    score = np.nan_to_num(np.asarray(score, dtype=float), nan=np.nanmax(score) if len(score) else 0)
    out = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "brier": None,
        "calibration_slope": None,
    }
    if probabilities:
        out["brier"] = float(brier_score_loss(y, score))
        out["calibration_slope"] = calibration_slope(y, score)
    return out


def tier_metrics(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float]) -> dict:
    """Recall and precision of flagging rows at or above each tier's threshold."""
    out = {}
    positives = max(int(y.sum()), 1)
    for tier, threshold in thresholds.items():
        flagged = p >= threshold
        hits = int((flagged & (y == 1)).sum())
        out[tier] = {
            "threshold": float(threshold),
            "flagged_share": float(flagged.mean()),
            "recall": hits / positives,
            "precision": hits / max(int(flagged.sum()), 1),
        }
    return out


def decile_calibration(predicted: np.ndarray, realized: np.ndarray) -> list[dict]:
    """Mean predicted vs realized value per decile of the prediction."""
    order = np.argsort(predicted, kind="stable")
    rows = []
    for d, idx in enumerate(np.array_split(order, 10), start=1):
        if len(idx) == 0:
            continue
        mp, mr = float(predicted[idx].mean()), float(realized[idx].mean())
        rows.append(
            {"decile": d, "n": len(idx), "mean_predicted": mp, "mean_realized": mr,
             "ratio": mp / mr if mr else None}
        )  # fmt: skip
    return rows
