"""Every trialwatch error descends from ``TrialwatchError``; schema errors live here.

A ``DecodeError`` names its reason with a short code (``.reason``) that the
worker writes into the dead-letter header, plus a readable message.
"""

from __future__ import annotations

__all__ = [
    "BadMarker",
    "ContractViolation",
    "CorruptBody",
    "DecodeError",
    "EncodeError",
    "SchemaError",
    "TrialwatchError",
    "TruncatedMessage",
    "UnknownFingerprint",
]


class TrialwatchError(Exception):
    """Root of every error trialwatch raises on purpose."""


class SchemaError(TrialwatchError):
    """A record or message does not fit the wire contract."""


class DecodeError(SchemaError):
    """Bytes that cannot become a record; ``reason`` is a short code."""

    reason = "undecodable"


class BadMarker(DecodeError):
    """The message does not start with the single-object marker C3 01."""

    reason = "bad_marker"


class UnknownFingerprint(DecodeError):
    """The writer schema's fingerprint is not one of ours (or of another record)."""

    reason = "unknown_fingerprint"


class TruncatedMessage(DecodeError):
    """The message ends before the header or the body does."""

    reason = "truncated"


class CorruptBody(DecodeError):
    """The body does not decode with the writer schema, or has trailing bytes."""

    reason = "corrupt_body"


class ContractViolation(DecodeError):
    """A well-formed record that breaks a business rule (``field`` names it)."""

    reason = "contract_violation"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class EncodeError(SchemaError):
    """A record that does not fit its schema."""
