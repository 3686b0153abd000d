"""The business contract of a VisitEvent, beyond what Avro types can say.

Runs on every event in the worker and on every line of a replayed file, so it
is plain comparisons, no reflection. A violation names the field and the rule.
"""

from __future__ import annotations

import math

from trialwatch.schemas.exceptions import ContractViolation
from trialwatch.schemas.registry import current

EVENT_TYPES = frozenset(
    {
        "ENROLLED",
        "VISIT_COMPLETED",
        "VISIT_MISSED",
        "ADVERSE_EVENT",
        "EPRO_SUBMITTED",
        "CONTACT_ATTEMPT",
        "WITHDRAWN",
        "COMPLETED",
    }
)
SEXES = frozenset({"F", "M", "X"})
ARMS = frozenset({"ACTIVE", "PLACEBO", "CONTROL"})
PHASES = frozenset({"I", "II", "III", "IV"})
TERMINAL = frozenset({"WITHDRAWN", "COMPLETED"})  # both end the participant's scoring
MS_PER_DAY = 86_400_000  # event times are timestamp-millis
MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

FIELDS: tuple[str, ...] = tuple(f["name"] for f in current("VisitEvent").source["fields"])
_FIELD_SET = frozenset(FIELDS)
_IDS = ("event_id", "patient_id", "trial_id", "site_id")


def _require(event: dict, field: str) -> object:
    value = event.get(field)
    if value is None:
        raise ContractViolation(field, f"required for {event['event_type']} events")
    return value


def _number(event: dict, field: str, low: float, high: float) -> float:
    value = _require(event, field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractViolation(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ContractViolation(field, f"{value!r} outside [{low}, {high}]")
    return value


def _time(event: dict, field: str) -> None:
    value = _require(event, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractViolation(field, "must be integer epoch milliseconds")
    if not MIN_TIME_MS <= value < MAX_TIME_MS:
        raise ContractViolation(field, f"absurd time {value} (outside 2000-2100)")


MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = {"reason": 1_000, "source_system": 64}


def validate_event(event: dict) -> dict:
    """Return ``event`` unchanged if it honours the contract, else raise ContractViolation."""
    for field in _IDS:
        value = event.get(field)
        if not isinstance(value, str) or not value:
            raise ContractViolation(field, "must be a non-empty string")
        if len(value) > MAX_ID_LENGTH:
            raise ContractViolation(field, f"longer than {MAX_ID_LENGTH} characters")
    for field, limit in MAX_TEXT_LENGTH.items():
        text = event.get(field)
        if text is not None and len(text) > limit:
            raise ContractViolation(field, f"oversized: {len(text)} characters > {limit}")
    kind = event.get("event_type")
    if kind not in EVENT_TYPES:
        raise ContractViolation("event_type", f"unknown event type {kind!r}")
    _time(event, "event_time")
    if kind == "ENROLLED":
        _number(event, "age", 0, 120)
        if event.get("sex") not in SEXES:
            raise ContractViolation("sex", f"must be one of {sorted(SEXES)}")
        if event.get("arm") not in ARMS:
            raise ContractViolation("arm", f"must be one of {sorted(ARMS)}")
        if event.get("phase") not in PHASES:
            raise ContractViolation("phase", f"must be one of {sorted(PHASES)}")
        _number(event, "distance_km", 0, 20_000)
        _number(event, "planned_visits", 1, 1_000)
        _number(event, "visit_interval_days", 1, 3_650)
        if event.get("visit_window_days") is not None:
            _number(event, "visit_window_days", 0, 365)
    elif kind in ("VISIT_COMPLETED", "VISIT_MISSED"):
        _number(event, "visit_number", 1, 1_000)
        _time(event, "scheduled_time")
    elif kind == "ADVERSE_EVENT":
        grade = _number(event, "ae_grade", 1, 5)
        if grade != int(grade):
            raise ContractViolation("ae_grade", "CTCAE grade must be an integer 1-5")
        if not isinstance(event.get("serious"), bool):
            raise ContractViolation("serious", "required (true/false) for ADVERSE_EVENT")
    elif kind == "EPRO_SUBMITTED":
        _number(event, "epro_score", 0, 100)
    elif kind == "CONTACT_ATTEMPT" and not isinstance(event.get("reached"), bool):
        raise ContractViolation("reached", "required (true/false) for CONTACT_ATTEMPT")
    return event


def normalize_event(partial: dict) -> dict:
    """Fill absent optional fields with None (JSON lines may omit them); reject unknown keys."""
    if not isinstance(partial, dict):
        raise ContractViolation("event", f"must be an object, got {type(partial).__name__}")
    unknown = partial.keys() - _FIELD_SET
    if unknown:
        raise ContractViolation(sorted(unknown)[0], "unknown field")
    return {field: partial.get(field) for field in FIELDS}
