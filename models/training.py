"""Training: build rows from an event history, train, calibrate, tier, evaluate, save.

The events come in as an argument (``TrainingSet``): simulated worlds (see
``producers.training_sets``) or a sponsor's own history read from a file. Only
a simulated world carries ``Truth``, so only it gets the oracle and CLV sections.

One row per applied, non-terminal event (``models.dataset.collect``: streamed,
float32, censored at the file's end), the label "withdraws within the next H
days". Patients are split by enrolment time (earliest 60% train, next 20%
validation, last 20% test), so no patient sits in two folds and the test set is
the future. In the same run: a logistic regression and a one-rule baseline
(visit intervals since the last completed visit), the ORACLE (the simulator's true
probabilities) on the same test rows, and the same model scored on any extra
evaluation sets (worlds built with other parameters: does it transfer?), and the
expected net savings of the alert policy on the test split (``models.savings``).
Tracking (MLflow) is not done here: ``streams.tracking`` logs the finished
artifact, so this layer reads no environment and writes only the artifact.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np

from trialwatch.models import artifacts
from trialwatch.models.clv import clv
from trialwatch.models.dataset import Record, RowTable, collect
from trialwatch.models.drift import DriftReference
from trialwatch.models.features import FEATURE_NAMES
from trialwatch.models.metrics import binary_metrics, decile_calibration, tier_metrics
from trialwatch.models.retention import RetentionModel, fit_retention
from trialwatch.models.savings import savings_card, tier_ranks
from trialwatch.models.scorer import phase_index
from trialwatch.models.state import Outcome, PatientState, apply
from trialwatch.models.tiers import choose_tiers

Progress = Callable[[str, float], None]

LightGBMParams = Mapping[str, bool | int | float | str]

CHURN_PARAMS: dict[str, bool | int | float | str] = {
    "objective": "binary",
    "learning_rate": 0.04,
    "num_leaves": 15,
    "min_data_in_leaf": 600,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "verbose": -1,
    "num_threads": 2,
    "seed": 7,
    "deterministic": True,
}
MAX_ROUNDS = 400
# The logistic baseline on a fixed sample of training rows: its pipeline makes
# float64 copies (~500 bytes a row), and 300k rows pin 28 coefficients down.
LOGISTIC_MAX_ROWS = 300_000
PREDICT_BLOCK = 65_536  # rows scored at a time: no float copy of a whole fold
_PROGRESS = FEATURE_NAMES.index("trial_progress")  # the retention curve reads it


@dataclass(frozen=True)
class Truth:
    """What only a simulator knows, per event index of the training events."""

    probability: Callable[[float], np.ndarray]  # horizon days -> true P(withdraw within it)
    remaining_value: np.ndarray  # value the participant delivered after the event


@dataclass(frozen=True)
class TrainingSet:
    """Events to learn from, what they are, and any truth.

    Either ``events`` in memory (a simulated world, event-time order) or
    ``read``: a callable that streams ``(number, event, error)`` records of a
    file once (``size`` records, for progress). Truth needs ``events``.
    ``params`` override ``CHURN_PARAMS`` for this data (a profile's family is
    tuned for its size: ``producers.training_sets.FAMILY_PARAMS``).
    """

    events: Sequence[dict] | None
    source: dict  # the model card's "data" section; carries "fingerprint_sha256"
    truth: Truth | None = None
    read: Callable[[], Iterable[Record]] | None = None
    size: int | None = None
    params: LightGBMParams = field(default_factory=dict)

    def churn_params(self) -> dict[str, bool | int | float | str]:
        """The LightGBM parameters this data trains with (the card records them)."""
        return {**CHURN_PARAMS, **self.params}

    def records(self) -> Iterable[Record]:
        if self.read is not None:
            return self.read()
        return ((i, e, None) for i, e in enumerate(self.events or (), start=1))

    def expected_records(self) -> int | None:
        return self.size if self.read is not None else len(self.events or ())


@dataclass
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.flatnonzero(self.train), np.flatnonzero(self.valid), np.flatnonzero(self.test)


class _Rows(lgb.Sequence):
    """Rows ``index`` of ``X`` as LightGBM reads them, a batch at a time: the
    Dataset is binned from the one float32 table, no copy of a fold."""

    batch_size = PREDICT_BLOCK

    def __init__(self, X: np.ndarray, index: np.ndarray) -> None:
        self.X, self.index = X, index

    def __getitem__(self, i):
        rows = self.X[self.index[i]]  # a batch (slice), or one row of the bin sample
        return rows if isinstance(i, slice) else rows.astype(np.float64)

    def __len__(self) -> int:
        return len(self.index)


def _predict(booster: lgb.Booster, X: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Raw scores of rows ``index`` of ``X``, a block at a time."""
    out = np.empty(len(index))
    for lo in range(0, len(index), PREDICT_BLOCK):
        out[lo : lo + PREDICT_BLOCK] = booster.predict(X[index[lo : lo + PREDICT_BLOCK]])
    return out


def split_by_patient(rows: RowTable) -> Split:
    """Patients ordered by enrolment: 60/20/20. Row masks of labelled (uncensored) rows."""
    order = sorted(
        range(len(rows.patient_ids)), key=lambda c: (rows.enrolled_at[c], rows.patient_ids[c])
    )
    n = len(order)
    fold = np.empty(n, dtype=np.int8)
    for i, c in enumerate(order):
        fold[c] = 0 if i < 0.6 * n else 1 if i < 0.8 * n else 2
    f = fold[rows.patient]
    return Split(train=(f == 0) & rows.observed, valid=(f == 1) & rows.observed,
                 test=(f == 2) & rows.observed)  # fmt: skip


def _noop(stage: str, fraction: float) -> None:
    return None


def read_rows(
    data: TrainingSet, horizon_days: int, progress: Progress, stage: str, lo: float, hi: float
) -> RowTable:
    """``collect`` with progress mapped onto [lo, hi] of the whole run."""
    total = data.expected_records()

    def tick(n: int) -> None:
        progress(f"{stage} ({n:,} records)", lo + (hi - lo) * min(n / max(total or n, 1), 1.0))

    progress(stage, lo)
    return collect(data.records(), horizon_days, progress=tick)


def train(
    data: TrainingSet,
    horizon_days: int = 60,
    out_dir: Path | str = "artifacts",
    progress: Progress | None = None,
    evaluations: Mapping[str, TrainingSet] | None = None,
) -> Path:
    """Train everything and write a versioned artifact; return its directory.

    ``evaluations`` are other histories (e.g. worlds simulated with other
    parameters) the finished model is scored on, for the model card.
    """
    progress = progress or _noop
    started = time.perf_counter()
    truth = data.truth
    if truth is not None and data.events is None:
        raise ValueError("truth needs the events in memory (TrainingSet.events)")
    rows = read_rows(data, horizon_days, progress, "building features", 0.05, 0.3)
    split = split_by_patient(rows)
    if not (split.train.any() and split.valid.any() and split.test.any()):
        raise ValueError(
            f"too little labelled history to train: {len(rows.patient_ids)} participants, "
            f"{int(rows.observed.sum())} labelled rows"
        )
    X, y = rows.X, rows.y
    train_idx, valid_idx, test_idx = split.indices()

    progress("training LightGBM", 0.3)
    params = data.churn_params()
    churn = _fit_churn(X, y, train_idx, valid_idx, params)
    raw_valid = _predict(churn, X, valid_idx)
    cal_x, cal_y = _isotonic(raw_valid, y[split.valid])
    p_valid = np.interp(raw_valid, cal_x, cal_y)
    p_test = np.interp(_predict(churn, X, test_idx), cal_x, cal_y)

    progress("baselines", 0.5)
    logistic_test = _logistic(X, y, train_idx, test_idx)
    one_rule_test = X[test_idx, FEATURE_NAMES.index("intervals_since_last_visit")]
    oracle_test = None
    if truth is not None:
        oracle_test = truth.probability(horizon_days)[rows.event_index[split.test]]

    progress("tiers", 0.55)
    tiers = choose_tiers(p_valid, y[split.valid])

    progress("retention curve model", 0.6)
    retention = _fit_retention(X[valid_idx], p_valid, rows, split.valid)
    attendance = _population_attendance(rows, split)

    progress("evaluating", 0.65)
    y_test = y[split.test]
    metrics = {
        "lightgbm": binary_metrics(y_test, p_test),
        "logistic_regression": binary_metrics(y_test, logistic_test),
        "one_rule_intervals_since_last_visit": binary_metrics(
            y_test, one_rule_test, probabilities=False
        ),
    }
    savings = _savings(rows, split, p_test, tiers.thresholds, horizon_days)
    clv_table = None
    transfer = {"test split": _transfer_row(y_test, p_test, oracle_test)}
    if truth is not None:
        metrics["oracle"] = binary_metrics(y_test, oracle_test)
        progress_test = X[test_idx, _PROGRESS]
        curves = retention.curves(p_test, phase_index(X[test_idx]), progress_test)
        clv_table = _clv_calibration(data, rows, split, curves, attendance)

    def predict(Xe: np.ndarray) -> np.ndarray:
        return np.interp(churn.predict(Xe), cal_x, cal_y)

    for k, (name, other) in enumerate((evaluations or {}).items()):
        share = 0.65 + 0.2 * k / max(len(evaluations or {}), 1)
        transfer[name] = _evaluate(other, predict, horizon_days, progress, name, share)
        del other  # an evaluation world may be built on demand: one in memory at a time

    fingerprint = data.source["fingerprint_sha256"]
    version = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{fingerprint[:8]}"
    root = Path(out_dir)
    version_dir = root / version
    version_dir.mkdir(parents=True, exist_ok=False)
    churn.save_model(str(version_dir / "model.txt"))
    artifacts.write_json(version_dir, "retention.json", retention.to_json())
    artifacts.write_json(
        version_dir,
        "calibration.json",
        {
            "method": "Platt scaling on the validation fold, tabulated",
            "x": cal_x.tolist(),
            "y": cal_y.tolist(),
            "horizon_days": horizon_days,
            "population_attendance": attendance,
        },
    )
    artifacts.write_json(version_dir, "tiers.json", tiers.to_json())
    drift = DriftReference.fit(X[valid_idx], p_valid, FEATURE_NAMES)  # what PSI compares with
    artifacts.write_json(version_dir, "drift_reference.json", drift.to_json())
    artifacts.write_json(version_dir, "features.json", list(FEATURE_NAMES))
    card = {
        "version": version,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "lightgbm_version": lgb.__version__,
        "horizon_days": horizon_days,
        "label": f"participant withdraws within {horizon_days} days after the event",
        "data": {
            **data.source,
            "participants": len(rows.patient_ids),
            "events": rows.report["records"],
            "input": rows.report,
            "rows": {"train": int(split.train.sum()), "valid": int(split.valid.sum()),
                     "test": int(split.test.sum())},
            "patients": {k: len(np.unique(rows.patient[m])) for k, m in
                         (("train", split.train), ("valid", split.valid), ("test", split.test))},
            "base_rate": {"train": float(y[split.train].mean()), "test": float(y_test.mean())},
            "split": "by patient, ordered by enrolment time: 60/20/20; censored rows "
                     "(horizon past the file's end, no withdrawal seen) left out",
        },
        "model": {"trees": churn.num_trees(), "params": params,
                  "retention": retention.to_json()},
        "test_metrics": metrics,
        "ratio_to_oracle": None if truth is None else {
            "roc_auc": metrics["lightgbm"]["roc_auc"] / metrics["oracle"]["roc_auc"],
            "pr_auc": metrics["lightgbm"]["pr_auc"] / metrics["oracle"]["pr_auc"],
        },
        "transfer": transfer,
        "tiers": {**tiers.to_json(), "at_test": tier_metrics(y_test, p_test, tiers.thresholds)},
        "savings": savings,
        "clv_decile_calibration": clv_table,
        "training_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # fmt: skip
    artifacts.write_json(version_dir, "model_card.json", card)
    progress("plots", 0.9)
    from trialwatch.models.plots import write_plots

    write_plots(version_dir, churn, X[test_idx], y_test, p_test, logistic_test, oracle_test)
    artifacts.publish_latest(root, version)
    progress("done", 1.0)
    return version_dir


def _fit_churn(X, y, train_idx, valid_idx, params: LightGBMParams) -> lgb.Booster:
    """LightGBM on rows ``train_idx``, early-stopped on ``valid_idx``; the binned
    Datasets are read from ``X`` by index and freed once the trees are grown."""
    names = list(FEATURE_NAMES)
    train_set = lgb.Dataset(_Rows(X, train_idx), y[train_idx], feature_name=names)
    valid_set = lgb.Dataset(_Rows(X, valid_idx), y[valid_idx], reference=train_set)
    booster = lgb.train(
        dict(params),
        train_set,
        MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    return booster.free_dataset()


def _isotonic(raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibration as knots applied with numpy.interp.

    Platt scaling (a logistic fit on the raw log-odds) tabulated on a fine grid:
    two parameters generalise to later patients better than an isotonic step
    function fitted on a validation fold with a 7% base rate (isotonic gave a
    test calibration slope of 0.76 on the quick profile; Platt about 1).
    """
    from sklearn.linear_model import LogisticRegression

    q = np.clip(raw, 1e-7, 1 - 1e-7)
    logit = np.log(q / (1 - q)).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    grid_logit = np.linspace(-12, 12, 2401)
    grid_y = platt.predict_proba(grid_logit.reshape(-1, 1))[:, 1]
    return 1 / (1 + np.exp(-grid_logit)), grid_y


def _logistic(X, y, train_idx, test_idx) -> np.ndarray:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(train_idx) > LOGISTIC_MAX_ROWS:  # a baseline: a fixed sample keeps memory bounded
        keep = np.random.default_rng(11).choice(len(train_idx), LOGISTIC_MAX_ROWS, replace=False)
        train_idx = train_idx[np.sort(keep)]
    model = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=2000)
    )
    model.fit(X[train_idx], y[train_idx])
    out = np.empty(len(test_idx))
    for lo in range(0, len(test_idx), PREDICT_BLOCK):
        block = test_idx[lo : lo + PREDICT_BLOCK]
        out[lo : lo + PREDICT_BLOCK] = model.predict_proba(X[block])[:, 1]
    return out


def _fit_retention(X, p, rows: RowTable, mask) -> RetentionModel:
    """The hazard model on validation rows (out-of-sample churn scores)."""
    return fit_retention(
        p,
        phase_index(X),
        X[:, _PROGRESS],
        rows.days_to_withdrawal()[mask],
        rows.days_to_end[mask],
        days_observed=rows.days_observed()[mask],
    )


def _population_attendance(rows: RowTable, split: Split) -> float:
    train_patients = np.unique(rows.patient[split.train])
    done = int(rows.completed_visits[train_patients].sum())
    missed = int(rows.missed_visits[train_patients].sum())
    return done / max(done + missed, 1)


def _clv_calibration(
    data: TrainingSet, rows: RowTable, split: Split, curves, attendance: float
) -> list[dict]:
    """Predicted CLV vs the value test participants actually delivered, by decile."""
    truth = data.truth
    assert truth is not None and data.events is not None
    test_idx = np.flatnonzero(split.test)
    curve_of = {int(e): curves[i] for i, e in enumerate(rows.event_index[test_idx])}
    test_patients = {rows.patient_ids[c] for c in np.unique(rows.patient[test_idx])}
    states: dict[str, PatientState] = {}
    predicted, realized = [], []
    for j, event in enumerate(data.events):
        pid = event["patient_id"]
        if pid not in test_patients:
            continue
        state, outcome = apply(states.get(pid), event)
        if outcome is Outcome.DUPLICATE:
            continue
        states[pid] = state
        if j not in curve_of:
            continue
        predicted.append(clv(state, event["event_time"], curve_of[j], attendance)[0])
        realized.append(truth.remaining_value[j])
    return decile_calibration(np.array(predicted), np.array(realized))


def _transfer_row(y: np.ndarray, p: np.ndarray, oracle: np.ndarray | None) -> dict:
    """Discrimination and calibration-in-the-large, each beside the oracle's."""
    model = binary_metrics(y, p)
    realized = float(y.mean())
    row = {
        "rows": len(y),
        "base_rate": realized,
        "roc_auc": model["roc_auc"],
        "pr_auc": model["pr_auc"],
        "calibration_in_the_large": float(p.mean()) / realized if realized else None,
        "calibration_slope": model["calibration_slope"],
    }
    if oracle is not None:
        truth = binary_metrics(y, oracle, probabilities=False)
        row.update(
            oracle_roc_auc=truth["roc_auc"],
            oracle_pr_auc=truth["pr_auc"],
            oracle_calibration_in_the_large=float(oracle.mean()) / realized if realized else None,
            roc_auc_ratio=model["roc_auc"] / truth["roc_auc"],
            pr_auc_ratio=model["pr_auc"] / truth["pr_auc"],
        )
    return row


def _evaluate(
    data: TrainingSet,
    predict: Callable[[np.ndarray], np.ndarray],
    horizon_days: int,
    progress: Progress,
    name: str,
    at: float,
) -> dict:
    """The finished model on another history: every labelled row (no split needed)."""
    rows = read_rows(data, horizon_days, progress, f"evaluating on {name}", at, at + 0.05)
    mask = rows.observed
    oracle = None
    if data.truth is not None:
        oracle = data.truth.probability(horizon_days)[rows.event_index[mask]]
    row = _transfer_row(rows.y[mask], predict(rows.X[mask]), oracle)
    keep = ("profile", "seed", "parameters", "fingerprint_sha256", "file")
    return {"data": {k: v for k, v in data.source.items() if k in keep}, **row}


def _savings(
    rows: RowTable, split: Split, p_test: np.ndarray, thresholds: dict, horizon_days: int
) -> dict:
    """The card's savings section on the test split (``models.savings``): the tiers'
    alerts replayed per participant, per 1,000 test participants."""
    patients = np.unique(rows.patient[split.test])
    return savings_card(
        rows.patient[split.test],
        rows.event_time[split.test],
        rows.y[split.test],
        tier_ranks(p_test, thresholds),
        horizon_days,
        participants=len(patients),
        withdrawals=int((rows.withdrawn_at[patients] >= 0).sum()),
    )
