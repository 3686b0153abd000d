"""Score feature rows with a trained artifact: numpy + LightGBM only, no pandas.

Loads once. Per event: one predict for the churn probability (then isotonic
calibration with numpy.interp), one predict of len(RETENTION_DAYS) rows for the
retention curve, CLV from the curve. Explanations (exact TreeSHAP via LightGBM
``pred_contrib``) cost about a millisecond, so the pipeline asks only for alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from models import artifacts
from models.clv import RETENTION_DAYS, clv
from models.exceptions import ArtifactError, ModelError
from models.features import FEATURE_NAMES, N_FEATURES
from models.reasons import reason_text
from models.state import PatientState
from models.tiers import Tiers

_H = np.array(RETENTION_DAYS, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Score:
    probability: float
    tier: str
    horizon_days: int
    retention_days: tuple[int, ...]
    retention: tuple[float, ...]
    clv: float
    value_at_risk: float


class Scorer:
    def __init__(self, version_dir: Path) -> None:
        artifacts.check_complete(version_dir)
        names = artifacts.read_json(version_dir, "features.json")
        if tuple(names) != FEATURE_NAMES:
            raise ArtifactError(
                f"artifact {version_dir.name} was trained on other features; retrain it"
            )
        try:
            self.churn = lgb.Booster(model_file=str(version_dir / "model.txt"))
            self.retention_model = lgb.Booster(model_file=str(version_dir / "retention.txt"))
        except lgb.basic.LightGBMError as exc:
            raise ArtifactError(f"cannot load the LightGBM models: {exc}") from None
        cal = artifacts.read_json(version_dir, "calibration.json")
        self.cal_x = np.asarray(cal["x"], dtype=np.float64)
        self.cal_y = np.asarray(cal["y"], dtype=np.float64)
        self.horizon_days = int(cal["horizon_days"])
        self.population_attendance = float(cal["population_attendance"])
        self.tiers = Tiers.from_json(artifacts.read_json(version_dir, "tiers.json"))
        card_path = version_dir / "model_card.json"
        self.card = (
            artifacts.read_json(version_dir, "model_card.json") if card_path.exists() else {}
        )
        self.version = version_dir.name
        self.path = version_dir

    @classmethod
    def load(cls, path: Path | str) -> Scorer:
        return cls(artifacts.resolve(Path(path)))

    # ----------------------------------------------------------- the parts
    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(withdraw within horizon) for rows of X."""
        raw = self.churn.predict(_check(X), num_threads=1)
        return np.interp(raw, self.cal_x, self.cal_y)

    def retention_curves(self, X: np.ndarray) -> np.ndarray:
        """S(h) for h in RETENTION_DAYS, one row per row of X, non-increasing in h."""
        X = _check(X)
        n, k = len(X), len(_H)
        stacked = np.empty((n * k, N_FEATURES + 1))
        stacked[:, :N_FEATURES] = np.repeat(X, k, axis=0)
        stacked[:, N_FEATURES] = np.tile(_H, n)
        q = self.retention_model.predict(stacked, num_threads=1).reshape(n, k)
        return np.minimum.accumulate(1.0 - q, axis=1)

    def score_many(self, X: np.ndarray, states: list[PatientState], ats: list[int]) -> list[Score]:
        probs = self.probabilities(X)
        curves = self.retention_curves(X)
        scores = []
        for p, curve, state, at in zip(probs, curves, states, ats, strict=True):
            value, at_risk = clv(state, at, curve, self.population_attendance)
            scores.append(
                Score(
                    probability=float(p),
                    tier=self.tiers.tier(float(p)),
                    horizon_days=self.horizon_days,
                    retention_days=RETENTION_DAYS,
                    retention=tuple(float(s) for s in curve),
                    clv=float(value),
                    value_at_risk=float(at_risk),
                )
            )
        return scores

    def score_one(self, x: np.ndarray, state: PatientState, at_ms: int) -> Score:
        return self.score_many(x.reshape(1, -1), [state], [at_ms])[0]

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        """Top-k risk-raising drivers by exact TreeSHAP (contributions in log-odds)."""
        contrib = self.churn.predict(_check(x.reshape(1, -1)), pred_contrib=True, num_threads=1)[0]
        order = np.argsort(-contrib[:N_FEATURES], kind="stable")[:k]
        return [
            {
                "feature": FEATURE_NAMES[i],
                "value": float(x[i]),
                "contribution": float(contrib[i]),
                "text": reason_text(FEATURE_NAMES[i], float(x[i])),
            }
            for i in order
        ]

    def recommended_action(self, tier: str) -> str:
        return self.tiers.action(tier)


def _check(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ModelError(f"feature rows must have shape (n, {N_FEATURES}), got {X.shape}")
    return X
