"""The business contract of a VisitEvent: each rule names its field."""

from __future__ import annotations

import pytest

from tests.schemas.factories import EVENT_TYPES, event_factory
from trialwatch.schemas.contract import normalize_event, validate_event
from trialwatch.schemas.exceptions import ContractViolation


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_valid_events_pass(kind):
    event = event_factory(kind)
    assert validate_event(event) is event


@pytest.mark.parametrize(
    ("kind", "overrides", "field"),
    [
        ("VISIT_COMPLETED", {"patient_id": ""}, "patient_id"),
        ("VISIT_COMPLETED", {"patient_id": None}, "patient_id"),
        ("VISIT_COMPLETED", {"event_type": "TELEPORTED"}, "event_type"),
        ("ADVERSE_EVENT", {"ae_grade": 0}, "ae_grade"),
        ("ADVERSE_EVENT", {"ae_grade": 6}, "ae_grade"),
        ("ADVERSE_EVENT", {"serious": None}, "serious"),
        ("VISIT_MISSED", {"event_time": 10}, "event_time"),
        ("VISIT_MISSED", {"event_time": 9_999_999_999_999}, "event_time"),
        ("VISIT_MISSED", {"scheduled_time": None}, "scheduled_time"),
        ("EPRO_SUBMITTED", {"epro_score": float("nan")}, "epro_score"),
        ("EPRO_SUBMITTED", {"epro_score": 101.0}, "epro_score"),
        ("ENROLLED", {"age": None}, "age"),
        ("ENROLLED", {"arm": "BOTH"}, "arm"),
        ("ENROLLED", {"distance_km": float("inf")}, "distance_km"),
        ("ENROLLED", {"planned_visits": 0}, "planned_visits"),
        ("CONTACT_ATTEMPT", {"reached": None}, "reached"),
    ],
)
def test_violations_name_the_field(kind, overrides, field):
    event = event_factory(kind)
    event.update(overrides)
    with pytest.raises(ContractViolation) as info:
        validate_event(event)
    assert info.value.field == field
    assert field in str(info.value)


def test_normalize_fills_optional_fields_and_rejects_unknown_ones():
    event = normalize_event({"event_id": "e", "patient_id": "p"})
    assert event["ae_grade"] is None and len(event) > 10
    with pytest.raises(ContractViolation) as info:
        normalize_event({"event_id": "e", "favourite_colour": "blue"})
    assert info.value.field == "favourite_colour"
    with pytest.raises(ContractViolation):
        normalize_event(["not", "an", "object"])


def test_oversized_fields_are_refused():
    for field, size in (("reason", 1_001), ("patient_id", 129), ("source_system", 65)):
        event = event_factory("WITHDRAWN", **{field: "x" * size})
        with pytest.raises(ContractViolation) as info:
            validate_event(event)
        assert info.value.field == field
