"""``trialwatch recalibrate``: a trial's calibration from an event history, offline.

The history is replayed through the worker's step function (``producers.
evaluation``), so the trial's matured predictions are exactly those the worker
counts, in the same ``OutcomeWindow``; ``models.recalibration.propose`` then
fits the same map the worker would fit on that window.

The fit is on top of the model's own calibration (the history is scored as
the model alone serves it); the new calibration's version follows the highest
one already written beside the model (``<model>/calibrations/<trial>/``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.monitoring import DEFAULT_WINDOW_WEEKS, OutcomeWindow
from trialwatch.models.recalibration import (
    Calibration,
    Proposal,
    RecalibrationPolicy,
    next_version,
    propose,
)
from trialwatch.models.scorer import Scorer
from trialwatch.producers.evaluation import evaluate_events
from trialwatch.producers.files import read_events


def calibrations_dir(scorer: Scorer, trial_id: str) -> Path:
    return scorer.path / "calibrations" / trial_id


def latest_written(scorer: Scorer, trial_id: str) -> Calibration | None:
    """The highest-numbered calibration written beside the model for the trial."""
    folder = calibrations_dir(scorer, trial_id)
    found = []
    for path in folder.glob(f"{trial_id}.r*.json") if folder.is_dir() else ():
        found.append(Calibration.from_json(json.loads(path.read_text())))
    return max(found, key=_number, default=None)


def recalibrate_file(
    path: Path,
    model_dir: Path,
    trial_id: str,
    alert_policy: AlertPolicy,
    policy: RecalibrationPolicy | None = None,
    window_weeks: int = DEFAULT_WINDOW_WEEKS,
) -> dict[str, Any]:
    """Replay ``path``, fit ``trial_id``'s map; the proposal, and the window it came from."""
    scorer = Scorer.load(model_dir)
    records = ((r.number, r.event, r.error) for r in read_events(path))
    evaluation = evaluate_events(records, scorer, alert_policy, window_weeks=window_weeks)
    window = evaluation.outcomes.get((scorer.version, trial_id))
    trials = sorted({t for _, t in evaluation.outcomes})
    if window is None:
        known = ", ".join(trials[:10]) + (" ..." if len(trials) > 10 else "")
        raise ValueError(
            f"no matured predictions of trial {trial_id!r} in {path} "
            f"(trials with outcomes: {known or 'none'})"
        )
    proposal = propose_on(window, scorer, policy)
    return {
        "input": str(path),
        "records": evaluation.records,
        "rejected": evaluation.rejected,
        "scorer": scorer,
        "window": window,
        "proposal": proposal,
    }


def propose_on(
    window: OutcomeWindow, scorer: Scorer, policy: RecalibrationPolicy | None = None
) -> Proposal:
    """A proposal on top of what ``scorer`` serves the trial now, numbered after both
    that and whatever is already written beside the model."""
    current = scorer.calibrations.get(window.trial_id)
    proposal = propose(window, scorer.version, current, scorer.horizon_days, policy)
    cal = proposal.calibration
    if cal is None:
        return proposal
    seen = [c for c in (current, latest_written(scorer, window.trial_id)) if c is not None]
    newest = max(seen, key=_number, default=None)
    renamed = replace(cal, version=next_version(window.trial_id, newest))
    return Proposal(renamed, proposal.reason, proposal.report)


def _number(cal: Calibration) -> int:
    return int(cal.version.rsplit(".r", 1)[1])
