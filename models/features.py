"""The feature vector: a pure function of the state at a moment, fixed named columns.

``features(state, at_ms)`` is what training, the offline backfill and the stream
all call, so the three see bitwise-identical rows. Missing values are NaN
(LightGBM routes them; the logistic baseline imputes): no ePRO yet, no AE yet,
no completed visit yet, compliance before the first scheduled visit.

Time is measured in the participant's own visit intervals where the meaning is
"how far along the schedule" (enrolled, since the last visit, remaining), and
counts become shares or rates: a model trained on one protocol's scale (visits
every 14 or 28 days, 6 or 14 of them) then reads another protocol the same way.
The protocol's absolute interval and visit count are not features: across
trials they act as trial identifiers, which a model memorises and which do not
transfer to a sponsor's other trials.

    >>> from trialwatch.models.features import FEATURE_NAMES
    >>> FEATURE_NAMES[:3]
    ('intervals_enrolled', 'trial_progress', 'visit_compliance')
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from trialwatch.models.state import Outcome, PatientState, apply
from trialwatch.schemas.contract import MS_PER_DAY, TERMINAL

FEATURE_NAMES: tuple[str, ...] = (
    "intervals_enrolled",
    "trial_progress",
    "visit_compliance",
    "missed_share",
    "consecutive_missed",
    "missed_last3",
    "intervals_since_last_visit",
    "mean_late_days",
    "last_late_days",
    "ae_per_30d",
    "ae_max_grade",
    "ae_grade_sum_30d",
    "serious_ae_30d",
    "days_since_last_ae",
    "epro_last",
    "epro_change",
    "epro_trend",
    "days_since_last_epro",
    "unreached_contacts",
    "unreached_30d",
    "consecutive_unreached",
    "age",
    "sex",
    "arm",
    "phase",
    "distance_km",
    "visits_remaining",
)
N_FEATURES = len(FEATURE_NAMES)
SEX_CODE = {"F": 0.0, "M": 1.0, "X": 2.0}
ARM_CODE = {"ACTIVE": 0.0, "PLACEBO": 1.0, "CONTROL": 2.0}
PHASE_CODE = {"I": 1.0, "II": 2.0, "III": 3.0, "IV": 4.0}
NAN = math.nan
WINDOW_MS = 30 * MS_PER_DAY


def features(state: PatientState, at_ms: int) -> np.ndarray:
    """The feature row of ``state`` as seen at ``at_ms`` (float64, FEATURE_NAMES order)."""
    return np.array(feature_list(state, at_ms), dtype=np.float64)


def feature_list(s: PatientState, at: int) -> list[float]:
    day = MS_PER_DAY
    interval_ms = s.visit_interval_days * day
    expected = min(max((at - s.enrolled_at) // interval_ms, 0), s.planned_visits)
    by_number = sorted(s.visits)  # visit ring sorted by visit number
    last3 = by_number[-3:]
    consecutive = 0
    for _n, _t, attended, _late in reversed(by_number):
        if attended:
            break
        consecutive += 1
    completed_times = [t for _n, t, attended, _l in s.visits if attended]
    last_completed = max(completed_times) if completed_times else s.enrolled_at
    attended_late = [late for _n, _t, attended, late in by_number if attended]
    since = at - WINDOW_MS
    recent_aes = [(g, ser) for t, g, ser in s.aes if t >= since]
    epro_last = s.epros[-1][1] if s.epros else NAN
    previous = [score for _t, score in s.epros[:-1]]
    contacts = s.contacts
    consecutive_unreached = 0
    for _t, reached in reversed(contacts):
        if reached:
            break
        consecutive_unreached += 1
    resolved = s.completed_visits + s.missed_visits
    enrolled_days = (at - s.enrolled_at) / day
    return [
        (at - s.enrolled_at) / interval_ms,
        s.resolved_visits / s.planned_visits,
        s.completed_visits / expected if expected else NAN,
        s.missed_visits / resolved if resolved else NAN,
        float(consecutive),
        float(sum(1 for _n, _t, attended, _l in last3 if not attended)),
        (at - last_completed) / interval_ms,
        s.late_ms_sum / day / s.completed_visits if s.completed_visits else NAN,
        attended_late[-1] if attended_late else NAN,
        s.ae_count * 30.0 / max(enrolled_days, 30.0),
        float(s.ae_max_grade),
        float(sum(g for g, _ in recent_aes)),
        float(any(ser for _, ser in recent_aes)),
        (at - s.aes[-1][0]) / day if s.aes else NAN,
        epro_last,
        epro_last - s.epro_first if s.epros and s.epro_first is not None else NAN,
        epro_last - sum(previous) / len(previous) if previous else NAN,
        (at - s.epros[-1][0]) / day if s.epros else NAN,
        float(s.unreached_total),
        float(sum(1 for t, reached in contacts if t >= since and not reached)),
        float(consecutive_unreached),
        float(s.age),
        SEX_CODE.get(s.sex, NAN),
        ARM_CODE.get(s.arm, NAN),
        PHASE_CODE.get(s.phase, NAN),
        s.distance_km,
        (s.enrolled_at + s.planned_visits * interval_ms - at) / interval_ms,
    ]


def days_to_planned_end(s: PatientState, at: int) -> float:
    """Days from ``at`` to the participant's planned last visit (retention fit)."""
    return (s.enrolled_at + s.planned_visits * s.visit_interval_days * MS_PER_DAY - at) / MS_PER_DAY


@dataclass
class RowSet:
    """One feature row per applied, non-terminal event, with where it came from."""

    X: np.ndarray
    event_index: np.ndarray  # position of the row's event in the input sequence
    patient_id: np.ndarray
    event_time: np.ndarray
    event_type: np.ndarray


def build_rows(
    events: Iterable[dict], states: dict[str, PatientState] | None = None, offset: int = 0
) -> RowSet:
    """Replay ``events`` through ``apply`` (per patient in input order) into rows.

    ``states`` carries patients across calls (chunked replay gives the same rows
    as one pass); ``offset`` numbers the events of this chunk.
    """
    states = {} if states is None else states
    rows: list[list[float]] = []
    index: list[int] = []
    pids: list[str] = []
    times: list[int] = []
    kinds: list[str] = []
    for i, event in enumerate(events, start=offset):
        pid = event["patient_id"]
        state, outcome = apply(states.get(pid), event)
        if outcome is Outcome.DUPLICATE:
            continue
        states[pid] = state
        if outcome is Outcome.APPLIED and event["event_type"] not in TERMINAL:
            rows.append(feature_list(state, event["event_time"]))
            index.append(i)
            pids.append(pid)
            times.append(event["event_time"])
            kinds.append(event["event_type"])
    return RowSet(
        X=np.array(rows, dtype=np.float64).reshape(len(rows), N_FEATURES),
        event_index=np.array(index, dtype=np.int64),
        patient_id=np.array(pids, dtype=object),
        event_time=np.array(times, dtype=np.int64),
        event_type=np.array(kinds, dtype=object),
    )
