"""Hand-made patient histories for model tests."""

from __future__ import annotations

from trialwatch.schemas.contract import normalize_event

T0 = 1_704_067_200_000  # 2024-01-01
DAY = 86_400_000


def history_factory(patient_id: str = "P1", misses: int = 2) -> list[dict]:
    """Enrolment, visits (the last ``misses`` missed), an AE, ePROs, contacts."""

    def event(n: int, kind: str, days: float, **fields) -> dict:
        return normalize_event(
            {
                "event_id": f"{patient_id}-{n:03d}",
                "patient_id": patient_id,
                "trial_id": "T1",
                "site_id": "S1",
                "event_type": kind,
                "event_time": T0 + int(days * DAY),
                **fields,
            }
        )

    events = [
        event(0, "ENROLLED", 0, age=44, sex="M", arm="PLACEBO", phase="III", distance_km=60.0,
              planned_visits=8, visit_interval_days=28, visit_window_days=3),
        event(1, "EPRO_SUBMITTED", 10, epro_score=80.0),
        event(2, "VISIT_COMPLETED", 29, visit_number=1, scheduled_time=T0 + 28 * DAY),
        event(3, "ADVERSE_EVENT", 40, ae_grade=3, serious=True),
        event(4, "EPRO_SUBMITTED", 45, epro_score=55.0),
        event(5, "VISIT_COMPLETED", 60, visit_number=2, scheduled_time=T0 + 56 * DAY),
    ]  # fmt: skip
    n = 6
    for k in range(3, 3 + misses):
        events.append(
            event(n, "VISIT_MISSED", 28 * k + 3, visit_number=k, scheduled_time=T0 + 28 * k * DAY)
        )
        events.append(event(n + 1, "CONTACT_ATTEMPT", 28 * k + 5, reached=False))
        n += 2
    return events
