"""The stream's view of model health: matured outcomes re-keyed and counted once, drift.

Realized accuracy, correct with N workers and under re-delivery:
1. the scoring agent sends the predictions an input event matured to the internal
   ``model-outcomes`` topic, keyed by model version and trial, with the input
   event's partition and offset (``outcome_batches``);
2. the aggregating agent (``streams.agents``) folds each batch into that key's
   ``OutcomeWindow`` (``models.monitoring``) in a Faust table. A batch whose input
   offset is not newer than the last counted for its input partition is a
   re-delivered copy and counts nothing, so the counts are idempotent;
3. every 2 s, the windows that changed are published to the compacted
   ``model-metrics`` topic and to the ``/metrics`` gauges of the worker that
   owns the key (so the topic gets one record per key and interval, not per batch).
What is not rebuilt: when a crash leaves a patient's state durable but the batch
unsent, the re-delivered event is a duplicate and its batch is lost (a handful of
outcomes, never a double count). ``trialwatch evaluate`` gives the same numbers.

Drift is per worker: each keeps ``models.drift`` windows per trial over the rows
it scores. Patients are spread over workers by key, so each worker's window is a
random sample of the trial; the gauges carry the worker's own numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from trialwatch.models.drift import DriftReference, DriftWindow
from trialwatch.models.monitoring import OutcomeWindow
from trialwatch.models.outcomes import MaturedOutcome
from trialwatch.streams import metrics


def outcomes_key(model_version: str, trial_id: str) -> bytes:
    return f"{model_version}|{trial_id}".encode()


def outcome_batches(
    trial_id: str, matured: Iterable[MaturedOutcome], partition: int, offset: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """``ModelOutcomes`` records (one per model version) for what one event matured."""
    by_version: dict[str, list[dict[str, Any]]] = {}
    for o in matured:
        by_version.setdefault(o.model_version, []).append(
            {
                "predicted_at": o.predicted_at,
                "probability": o.probability,
                "tier_rank": o.tier_rank,
                "label": o.label,
            }
        )
    return [
        (
            outcomes_key(version, trial_id),
            {
                "model_version": version,
                "trial_id": trial_id,
                "source_partition": partition,
                "source_offset": offset,
                "outcomes": rows,
            },
        )
        for version, rows in by_version.items()
    ]


def fold(window: OutcomeWindow | None, batch: dict[str, Any]) -> OutcomeWindow | None:
    """The window after a batch, or None when the batch was counted already."""
    if window is None:
        window = OutcomeWindow(batch["model_version"], batch["trial_id"])
    outcomes = (
        MaturedOutcome(
            batch["model_version"], o["predicted_at"], o["probability"], o["tier_rank"], o["label"]
        )
        for o in batch["outcomes"]
    )
    if not window.add_batch(batch["source_partition"], batch["source_offset"], outcomes):
        return None
    return window


LATEST: dict[tuple[str, str], dict[str, Any]] = {}  # what this worker last computed, for /model


def publish_gauges(record: dict[str, Any]) -> None:
    """Set the realized-accuracy gauges of one (model version, trial)."""
    key = (record["model_version"], record["trial_id"])
    LATEST[key] = record
    for name, gauge in metrics.REALIZED.items():
        value = record.get(name)
        if value is not None:
            gauge.labels(*key).set(value)


class DriftMonitor:
    """Per-trial drift windows over the rows this worker scores."""

    def __init__(self, reference: DriftReference | None) -> None:
        self.reference = reference
        self.windows: dict[str, DriftWindow] = {}

    def observe(self, trial_id: str, at_ms: int, x: np.ndarray, score: float) -> None:
        if self.reference is None:
            return
        window = self.windows.get(trial_id)
        if window is None:
            window = self.windows[trial_id] = DriftWindow(self.reference)
        window.add(at_ms, x, score)

    def publish(self) -> dict[str, dict[str, float]]:
        """Set the PSI gauges; the PSI by trial (trials with too few rows are left out)."""
        out = {}
        for trial_id, window in self.windows.items():
            psi = window.psi()
            if not psi:
                continue
            out[trial_id] = psi
            for name, value in psi.items():
                metrics.DRIFT_PSI.labels(trial_id, name).set(value)
        return out
