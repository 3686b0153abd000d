"""Population drift: PSI of each feature and of the score against the training data.

Training stores a ``DriftReference`` in the artifact (``drift_reference.json``):
for every feature and for the calibrated score, decile cut points of the
training rows and the share of rows in each bin, with missing values in a bin of
their own. A ``DriftWindow`` counts live rows into the same bins per event-time
week and gives the PSI over its newest weeks:

    PSI = sum over bins (live share - reference share) * ln(live / reference)

Flags: >= 0.10 a moderate shift, >= 0.25 a major one (the usual credit-scoring
convention). Binning one row is one numpy comparison against all cut points.
Windows are per trial, so protocol and trial-age features (``NOT_FLAGGED``) are
reported but never flagged, and a window with fewer than ``MIN_ROWS`` rows has
no PSI.

    >>> import numpy as np
    >>> from trialwatch.models.drift import DriftReference, DriftWindow
    >>> rng = np.random.default_rng(0)
    >>> ref = DriftReference.fit(rng.normal(size=(5000, 2)), rng.uniform(size=5000), ("a", "b"))
    >>> w = DriftWindow(ref, window_weeks=1)
    >>> for i in range(2000):
    ...     w.add(0, np.array([rng.normal() + 1.0, rng.normal()]), rng.uniform())
    >>> psi = w.psi()
    >>> psi["a"] > 0.25, psi["b"] < 0.1, psi["score"] < 0.1
    (True, True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trialwatch.schemas.contract import MS_PER_DAY

QUANTILES = np.linspace(0.1, 0.9, 9)
MODERATE, MAJOR = 0.10, 0.25
DEFAULT_WINDOW_WEEKS = 8
MIN_ROWS = 200  # below this a window's PSI is mostly the noise of its empty bins
# Features a single trial's window cannot be compared on with the pooled training
# rows: one value per trial (its protocol), or following the trial's own age.
NOT_FLAGGED = frozenset(
    {
        "phase",
        "intervals_enrolled", "trial_progress", "visits_remaining",
    }
)  # fmt: skip
WEEK_MS = 7 * MS_PER_DAY
FLOOR = 1e-4  # share given to an empty bin, so PSI stays finite


def psi(reference: np.ndarray, live: np.ndarray) -> float:
    """PSI between two vectors of bin shares (each summing to 1)."""
    r = np.maximum(reference, FLOOR)
    q = np.maximum(live, FLOOR)
    return float(((q - r) * np.log(q / r)).sum())


def flag(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "unknown"
    return "major" if value >= MAJOR else "moderate" if value >= MODERATE else "stable"


def flags(psi_by_name: dict[str, float]) -> dict[str, str]:
    """The flagged columns (moderate or major) among those a trial can be judged on."""
    out = {}
    for name, value in psi_by_name.items():
        level = flag(value)
        if name not in NOT_FLAGGED and level != "stable":
            out[name] = level
    return out


@dataclass(frozen=True)
class DriftReference:
    """Cut points and reference shares; row ``i`` of ``edges`` is column ``i`` (the
    score last). Edges are padded with +inf so every column has the same width."""

    names: tuple[str, ...]
    edges: np.ndarray  # (columns, 9) cut points, +inf padded
    shares: np.ndarray  # (columns, 11): 10 value bins (some unused) + missing

    @classmethod
    def fit(cls, X: np.ndarray, scores: np.ndarray, names: tuple[str, ...]) -> DriftReference:
        columns = np.column_stack([X, scores]).astype(np.float64)
        edges = np.full((columns.shape[1], len(QUANTILES)), np.inf)
        for j in range(columns.shape[1]):
            values = columns[:, j][~np.isnan(columns[:, j])]
            if len(values):
                cuts = np.unique(np.quantile(values, QUANTILES))
                edges[j, : len(cuts)] = cuts
        width = len(QUANTILES) + 2
        counts = np.zeros((columns.shape[1], width))
        for j, column in enumerate(columns.T):
            index = (column[:, None] >= edges[j]).sum(axis=1)
            index[np.isnan(column)] = width - 1
            counts[j] = np.bincount(index, minlength=width)
        return cls((*names, "score"), edges, counts / max(len(columns), 1))

    def bins(self, row: np.ndarray) -> np.ndarray:
        """Bin index of every column of one row (features then score)."""
        index = (row[:, None] >= self.edges).sum(axis=1)
        return np.where(np.isnan(row), self.shares.shape[1] - 1, index)

    def smoke_rows(self) -> np.ndarray:
        """Feature rows at the reference's cut points (one row per quantile; a
        column with fewer cuts repeats its highest): plausible inputs for a check
        that a model scores, without any data."""
        cuts = self.edges[:-1].T.copy()  # (quantiles, features); the score column dropped
        finite = np.where(np.isinf(cuts), -np.inf, cuts).max(axis=0)
        highest = np.where(np.isinf(finite), 0.0, finite)
        return np.where(np.isinf(cuts), highest, cuts)

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "edges": [[None if math.isinf(v) else v for v in row] for row in self.edges.tolist()],
            "shares": self.shares.tolist(),
            "flags": {"moderate": MODERATE, "major": MAJOR},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftReference:
        edges = np.array(
            [[math.inf if v is None else v for v in row] for row in data["edges"]], dtype=float
        )
        return cls(tuple(data["names"]), edges, np.array(data["shares"], dtype=float))


@dataclass
class DriftWindow:
    """Live bin counts of one population (a trial) per event-time week."""

    reference: DriftReference
    window_weeks: int = DEFAULT_WINDOW_WEEKS
    weeks: dict[int, np.ndarray] = field(default_factory=dict)
    newest_week: int | None = None

    def add(self, at_ms: int, x: np.ndarray, score: float) -> None:
        week = at_ms // WEEK_MS
        if self.newest_week is not None and week <= self.newest_week - self.window_weeks:
            return
        if self.newest_week is None or week > self.newest_week:
            self.newest_week = week
            for old in [w for w in self.weeks if w <= week - self.window_weeks]:
                del self.weeks[old]
        counts = self.weeks.get(week)
        if counts is None:
            counts = self.weeks[week] = np.zeros_like(self.reference.shares)
        row = np.append(x, score)
        counts[np.arange(len(row)), self.reference.bins(row)] += 1

    @property
    def rows(self) -> int:
        return int(sum(c[0].sum() for c in self.weeks.values()))

    def psi(self) -> dict[str, float]:
        """PSI per column over the window; empty below ``MIN_ROWS`` rows."""
        if self.rows < MIN_ROWS:
            return {}
        total = sum(self.weeks.values())
        live = total / total.sum(axis=1, keepdims=True)
        return {
            name: psi(self.reference.shares[j], live[j])
            for j, name in enumerate(self.reference.names)
        }
