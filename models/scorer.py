"""Score feature rows with a trained artifact: numpy + LightGBM only, no pandas.

Loads once. Per event: one LightGBM predict for the churn probability (through
``models.fastpredict``: the C API without the wrapper's per-call overhead), its
calibration with numpy.interp, the retention curve from the hazard model
(``models.retention``, numpy), CLV from the curve. Explanations (exact TreeSHAP
via LightGBM ``pred_contrib``) cost about a millisecond, so the pipeline asks
only for alerts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
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
from trialwatch.models.reasons import reason_text, two_sided
from trialwatch.models.recalibration import Calibration, served_version
from trialwatch.models.retention import RetentionModel
from trialwatch.models.state import PatientState
from trialwatch.models.tiers import Tiers

_PHASE = FEATURE_NAMES.index("phase")  # coded 1..4
_PROGRESS = FEATURE_NAMES.index("trial_progress")  # the retention curve reads it


@dataclass(frozen=True, slots=True)
class Score:
    probability: float
    tier: str
    horizon_days: int
    retention_days: tuple[int, ...]
    retention: tuple[float, ...]
    clv: float
    value_at_risk: float
    model_version: str = ""
    calibration_version: str | None = None  # the trial's recalibration, if any

    @property
    def served_version(self) -> str:
        """What the prediction is recorded and monitored under (model + calibration)."""
        if self.calibration_version is None:
            return self.model_version
        return f"{self.model_version}+{self.calibration_version}"


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
        self.calibrations: Mapping[str, Calibration] = {}

    def with_calibrations(self, calibrations: Mapping[str, Calibration]) -> Scorer:
        """The same model with these per-trial maps (a new object: the serving
        snapshot is swapped whole, never changed under a scoring event)."""
        for trial_id, cal in calibrations.items():
            if cal.model_version != self.version or cal.trial_id != trial_id:
                raise ArtifactError(
                    f"calibration {cal.version} is for {cal.model_version}/{cal.trial_id}, "
                    f"not {self.version}/{trial_id}"
                )
        clone = copy.copy(self)
        clone.calibrations = dict(calibrations)
        return clone

    def served_version(self, trial_id: str) -> str:
        return served_version(self.version, self.calibrations.get(trial_id))

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
        return self.retention.curves(probs, phase_index(X), X[:, _PROGRESS])

    def score_many(self, X: np.ndarray, states: list[PatientState], ats: list[int]) -> list[Score]:
        """Scores for rows of X: bitwise what ``score_one`` gives row by row (the
        backfill, the stream and POST /score must agree), so only the LightGBM
        part is batched; the curve and CLV take microseconds per row."""
        X = _check(X)
        probs = self.probabilities(X).tolist()
        phases = phase_index(X).tolist()
        progress = X[:, _PROGRESS].tolist()
        rows = zip(probs, phases, progress, states, ats, strict=True)
        return [self._score(p, ph, g, s, at) for p, ph, g, s, at in rows]

    def score_one(self, x: np.ndarray, state: PatientState, at_ms: int) -> Score:
        """One row, the per-event path."""
        x = x.reshape(1, -1)
        p = float(self.probabilities(x)[0])
        phase = min(max(int(x[0, _PHASE]) - 1, 0), 3)
        return self._score(p, phase, float(x[0, _PROGRESS]), state, at_ms)

    def _score(self, p: float, phase: int, progress: float, state: PatientState, at: int) -> Score:
        """The trial's map (if any) turns the model's probability into the served
        one; the curve, CLV and tier all follow the served probability."""
        cal = self.calibrations.get(state.trial_id) if self.calibrations else None
        tiers = self.tiers
        if cal is not None:
            p, tiers = cal.apply_one(p), cal.tiers
        curve = self.retention.curve_one(p, phase, progress)
        value, at_risk = clv(state, at, curve, self.population_attendance)
        return Score(
            probability=p,
            tier=tiers.tier(p),
            horizon_days=self.horizon_days,
            retention_days=RETENTION_DAYS,
            retention=tuple(curve),
            clv=value,
            value_at_risk=at_risk,
            model_version=self.version,
            calibration_version=None if cal is None else cal.version,
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

    def explain_both(self, x: np.ndarray, k: int = 3) -> dict[str, list[dict]]:
        """Top-k drivers that raise AND that lower the risk (``reasons.two_sided``)."""
        contrib = self.churn.predict(_check(x.reshape(1, -1)), pred_contrib=True, num_threads=1)[0]
        return two_sided(contrib, x.reshape(-1), k)

    def recommended_action(self, tier: str) -> str:
        return self.tiers.action(tier)

    def smoke_check(self) -> None:
        """Refuse a model that cannot score: finite probabilities in [0, 1], one per
        row, and non-increasing retention curves, on rows spanning the feature
        ranges the card's drift reference recorded (raises ``ArtifactError``)."""
        rows = self.drift_reference.smoke_rows() if self.drift_reference else None
        if rows is None or len(rows) == 0:
            rows = np.zeros((4, N_FEATURES))
        try:
            p = self.probabilities(rows)
            curves = self.retention_curves(rows, p)
        except Exception as exc:  # any failure here means: do not serve it
            raise ArtifactError(f"model {self.version} cannot score: {exc}") from None
        if p.shape != (len(rows),) or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
            raise ArtifactError(f"model {self.version} gives probabilities outside [0, 1]")
        if not np.all(np.isfinite(curves)) or np.any(np.diff(curves, axis=1) > 1e-12):
            raise ArtifactError(f"model {self.version} gives an increasing retention curve")


def phase_index(X: np.ndarray) -> np.ndarray:
    """Row-wise index into retention.PHASES from the coded ``phase`` feature."""
    return np.minimum(np.maximum(X[:, _PHASE].astype(np.intp) - 1, 0), 3)


def _check(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ModelError(f"feature rows must have shape (n, {N_FEATURES}), got {X.shape}")
    return X
