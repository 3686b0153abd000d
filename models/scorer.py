"""Score feature rows with a trained artifact: numpy + LightGBM only, no pandas.

Loads once. Per event: one LightGBM predict for the churn probability (through
``models.fastpredict``: the C API without the wrapper's per-call overhead), its
calibration with numpy.interp, the retention curve from the hazard model
(``models.retention``, numpy), CLV from the curve. Explanations (exact TreeSHAP
via LightGBM ``pred_contrib``) cost about a millisecond, so the pipeline asks
only for alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from trialwatch.models import artifacts
from trialwatch.models.clv import RETENTION_DAYS, clv
from trialwatch.models.drift import DriftReference
from trialwatch.models.exceptions import ArtifactError, ModelError
from trialwatch.models.fastpredict import FastPredictor
from trialwatch.models.features import FEATURE_NAMES, N_FEATURES
from trialwatch.models.reasons import reason_text
from trialwatch.models.retention import RetentionModel
from trialwatch.models.state import PatientState
from trialwatch.models.tiers import Tiers

_PHASE = FEATURE_NAMES.index("phase")  # coded 1..4


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
        except lgb.basic.LightGBMError as exc:
            raise ArtifactError(f"cannot load the LightGBM model: {exc}") from None
        self._predict = FastPredictor(self.churn).predict
        self.retention = RetentionModel.from_json(
            artifacts.read_json(version_dir, "retention.json")
        )
        cal = artifacts.read_json(version_dir, "calibration.json")
        self.cal_x = np.asarray(cal["x"], dtype=np.float64)
        self.cal_y = np.asarray(cal["y"], dtype=np.float64)
        self.horizon_days = int(cal["horizon_days"])
        self.population_attendance = float(cal["population_attendance"])
        self.tiers = Tiers.from_json(artifacts.read_json(version_dir, "tiers.json"))
        self.drift_reference = DriftReference.from_json(
            artifacts.read_json(version_dir, "drift_reference.json")
        )
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
        return np.interp(self._predict(_check(X)), self.cal_x, self.cal_y)

    def retention_curves(self, X: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        """S(h) for h in RETENTION_DAYS, one row per row of X, non-increasing in h."""
        X = _check(X)
        probs = self.probabilities(X) if probs is None else probs
        return self.retention.curves(probs, phase_index(X))

    def score_many(self, X: np.ndarray, states: list[PatientState], ats: list[int]) -> list[Score]:
        """Scores for rows of X: bitwise what ``score_one`` gives row by row (the
        backfill, the stream and POST /score must agree), so only the LightGBM
        part is batched; the curve and CLV take microseconds per row."""
        X = _check(X)
        probs = self.probabilities(X).tolist()
        phases = phase_index(X).tolist()
        rows = zip(probs, phases, states, ats, strict=True)
        return [self._score(p, self.retention.curve_one(p, ph), s, at) for p, ph, s, at in rows]

    def score_one(self, x: np.ndarray, state: PatientState, at_ms: int) -> Score:
        """One row, the per-event path."""
        x = x.reshape(1, -1)
        p = float(self.probabilities(x)[0])
        phase = min(max(int(x[0, _PHASE]) - 1, 0), 3)
        return self._score(p, self.retention.curve_one(p, phase), state, at_ms)

    def _score(self, p: float, curve: list[float], state: PatientState, at: int) -> Score:
        value, at_risk = clv(state, at, curve, self.population_attendance)
        return Score(
            probability=p,
            tier=self.tiers.tier(p),
            horizon_days=self.horizon_days,
            retention_days=RETENTION_DAYS,
            retention=tuple(curve),
            clv=value,
            value_at_risk=at_risk,
        )

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


def phase_index(X: np.ndarray) -> np.ndarray:
    """Row-wise index into retention.PHASES from the coded ``phase`` feature."""
    return np.minimum(np.maximum(X[:, _PHASE].astype(np.intp) - 1, 0), 3)


def _check(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ModelError(f"feature rows must have shape (n, {N_FEATURES}), got {X.shape}")
    return X
