"""Errors of the model code. Each names what was wrong; none yields a wrong score."""

from __future__ import annotations

from trialwatch.schemas.exceptions import TrialwatchError

__all__ = [
    "ArtifactError",
    "InvalidEventError",
    "ModelError",
    "NotEnrolledError",
    "NothingToScoreError",
]


class ModelError(TrialwatchError):
    """The model code refused an input; ``reason`` is the dead-letter code."""

    reason = "invalid_event"


class NotEnrolledError(ModelError):
    """An event for a patient whose ENROLLED event was never seen."""

    reason = "not_enrolled"


class InvalidEventError(ModelError):
    """An event the state cannot apply: unknown type, missing or non-finite number."""

    reason = "invalid_event"


class ArtifactError(ModelError):
    """A model artifact is missing, incomplete or does not match this code."""

    reason = "bad_artifact"


class NothingToScoreError(ModelError):
    """A history with no event that produces a score (only terminal or duplicate events)."""

    reason = "nothing_to_score"
