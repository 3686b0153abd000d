"""Valid records of every kind, for schema tests."""

from __future__ import annotations

from trialwatch.schemas.contract import normalize_event

BASE_TIME = 1_700_000_000_000


def event_factory(event_type: str = "ENROLLED", **overrides) -> dict:
    fields = {
        "ENROLLED": dict(
            age=54, sex="F", arm="PLACEBO", phase="III", distance_km=12.5,
            planned_visits=12, visit_interval_days=28, visit_window_days=3,
        ),
        "VISIT_COMPLETED": dict(visit_number=2, scheduled_time=BASE_TIME - 86_400_000),
        "VISIT_MISSED": dict(visit_number=3, scheduled_time=BASE_TIME - 3 * 86_400_000),
        "ADVERSE_EVENT": dict(ae_grade=3, serious=True),
        "EPRO_SUBMITTED": dict(epro_score=61.5),
        "CONTACT_ATTEMPT": dict(reached=False),
        "WITHDRAWN": dict(reason="relocation"),
        "COMPLETED": {},
    }[event_type]  # fmt: skip
    event = {
        "event_id": f"evt-{event_type.lower()}",
        "patient_id": "P-000123",
        "trial_id": "T-01",
        "site_id": "S-07",
        "event_type": event_type,
        "event_time": BASE_TIME,
        "source_system": "EDC",
        **fields,
        **overrides,
    }
    return normalize_event(event)


def score_factory(**overrides) -> dict:
    return {
        "patient_id": "P-000123", "trial_id": "T-01", "site_id": "S-07",
        "event_id": "evt-1", "event_type": "VISIT_MISSED", "event_time": BASE_TIME,
        "probability": 0.42, "horizon_days": 60, "tier": "HIGH",
        "retention_days": [30, 60, 90], "retention": [0.8, 0.6, 0.5],
        "clv": 12_345.6, "value_at_risk": 7_000.0, "model_version": "test-1",
        "calibration_version": None,
        **overrides,
    }  # fmt: skip


def alert_factory(**overrides) -> dict:
    score = score_factory()
    for key in ("retention_days", "retention"):
        score.pop(key)
    return {
        **score,
        "alert_id": "a-1",
        "previous_tier": None,
        "recommended_action": "call the participant within 48 hours",
        "reasons": [
            {"feature": "missed_last3", "value": 2.0, "contribution": 0.8, "text": "missed 2"},
        ],
        **overrides,
    }


EVENT_TYPES = (
    "ENROLLED", "VISIT_COMPLETED", "VISIT_MISSED", "ADVERSE_EVENT",
    "EPRO_SUBMITTED", "CONTACT_ATTEMPT", "WITHDRAWN", "COMPLETED",
)  # fmt: skip
