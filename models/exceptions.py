"""Errors of the model code. Each names what was wrong; none yields a wrong score."""

from __future__ import annotations

from trialwatch.schemas.exceptions import TrialwatchError

__all__ = ["ArtifactError", "InvalidEventError", "ModelError", "NotEnrolledError"]


class ModelError(TrialwatchError):
    """The model code refused an input."""


class NotEnrolledError(ModelError):
    """An event for a patient whose ENROLLED event was never seen."""


class InvalidEventError(ModelError):
    """An event the state cannot apply: unknown type, missing or non-finite number."""


class ArtifactError(ModelError):
    """A model artifact is missing, incomplete or does not match this code."""
