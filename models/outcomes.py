"""Open predictions and their outcomes, kept in the patient's own state.

Every score is a prediction "withdraws within H days". It stays open until its
horizon matures in the patient's EVENT time:
- positive when the participant withdraws within H days of the prediction;
- negative once an event of the participant lies more than H days after it, or
  the participant completes.
A participant who goes silent matures nothing until the next event arrives
(the withdrawal itself, in the end): maturity follows the patient's own clock,
so a replay matures exactly the same predictions.

Bounded: at most one open prediction per ``SLOT_DAYS`` of event time (the first
score in it) and at most ``OPEN_RING`` of them, so the state stays small and the
evaluation weighs each participant by time at risk, not by how chatty they are.

    >>> from trialwatch.models.outcomes import mature
    >>> DAY = 86_400_000
    >>> open_ = ((0, 0.2, 2, "v1"), (10 * DAY, 0.3, 2, "v1"))
    >>> kept, done = mature(open_, "VISIT_COMPLETED", 65 * DAY, horizon_days=60)
    >>> [o.label for o in done], [p[0] // DAY for p in kept]
    ([0], [10])
    >>> kept, done = mature(kept, "WITHDRAWN", 69 * DAY, horizon_days=60)
    >>> [o.label for o in done], kept
    ([1], ())
"""

from __future__ import annotations

from dataclasses import dataclass

from trialwatch.schemas.contract import MS_PER_DAY

SLOT_DAYS = 7
OPEN_RING = 12  # > 60-day horizon / 7-day slots, so a default horizon never overflows

OpenPrediction = tuple[int, float, int, str]  # (event time ms, probability, tier rank, version)


@dataclass(frozen=True, slots=True)
class MaturedOutcome:
    """A prediction whose horizon has matured: what was said and what happened."""

    model_version: str
    predicted_at: int
    probability: float
    tier_rank: int
    label: int  # 1 = withdrew within the horizon


def mature(
    open_predictions: tuple[OpenPrediction, ...], kind: str, at: int, horizon_days: float
) -> tuple[tuple[OpenPrediction, ...], tuple[MaturedOutcome, ...]]:
    """The predictions still open after an event of type ``kind`` at ``at``, and the
    ones it matured (oldest first). Nothing matured: the same tuple, unchanged."""
    horizon = horizon_days * MS_PER_DAY
    kept: list[OpenPrediction] = []
    done: list[MaturedOutcome] = []
    for prediction in open_predictions:
        t, p, tier, version = prediction
        if kind == "WITHDRAWN":  # the same rule as the training label (models.labels)
            done.append(MaturedOutcome(version, t, p, tier, int(t < at <= t + horizon)))
        elif kind == "COMPLETED" or at - t > horizon:
            done.append(MaturedOutcome(version, t, p, tier, 0))
        else:
            kept.append(prediction)
    if not done:
        return open_predictions, ()
    return tuple(kept), tuple(done)


def record(
    open_predictions: tuple[OpenPrediction, ...], prediction: OpenPrediction
) -> tuple[OpenPrediction, ...]:
    """Add a score as an open prediction unless another of its version lies within
    its slot.

    The ring is sorted by time and holds at most ``OPEN_RING`` predictions of each
    version (a shadow challenger's predictions mature beside the champion's); when
    full, the oldest are kept and the new one is not recorded (the horizon decides
    maturity, not arrival).
    """
    at, version = prediction[0], prediction[3]
    slot = SLOT_DAYS * MS_PER_DAY
    mine = [t for t, _, _, v in open_predictions if v == version]
    if len(mine) >= OPEN_RING or any(abs(at - t) < slot for t in mine):
        return open_predictions
    return tuple(sorted((*open_predictions, prediction)))
