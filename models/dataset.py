"""Training rows streamed from an event history: features, labels, censoring.

Why a module of its own: a sponsor's history may be 10M events, so rows are
built in one pass over ``(number, event, error)`` records without holding the
events. What is kept is float32 feature rows and a few integers per row and per
participant; a participant's state is dropped once their terminal event is seen
(nothing after it becomes a row), so live states are bounded by the active
participants, not by the file.

Labels are known only after the pass (a withdrawal decides the rows before
it), and some are not known at all: a participant with no terminal event in
the file is observed only up to the file's last event time, so a row whose
H-day horizon reaches past that time is CENSORED (not a negative) unless a
withdrawal inside the file already makes it positive. A participant whose
COMPLETED or WITHDRAWN event is in the file is observed to their end.

A record that is not an event (reader error) or that the state refuses
(``ModelError``: not enrolled, invalid fields) is reported by its number and
skipped; the rest still trains.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from trialwatch.models.exceptions import ModelError
from trialwatch.models.features import N_FEATURES, days_to_planned_end, feature_list
from trialwatch.models.labels import label
from trialwatch.models.state import Outcome, PatientState, apply
from trialwatch.schemas.contract import MS_PER_DAY, TERMINAL

Record = tuple[int, dict | None, str | None]  # (1-based number, event or None, error)
CHUNK_ROWS = 65_536
FIRST_REJECTS_KEPT = 20


@dataclass
class RowTable:
    """Feature rows of one history with their labels, and per-participant facts."""

    X: np.ndarray  # float32 (rows, N_FEATURES)
    event_index: np.ndarray  # int64: record number - 1 (the event's position)
    patient: np.ndarray  # int32: index into ``patient_ids``
    event_time: np.ndarray  # int64 ms
    days_to_end: np.ndarray  # float64: days to the planned last visit (retention fit)
    y: np.ndarray  # int8: withdraws within (t, t + H]
    observed: np.ndarray  # bool: the label is known (False = censored)
    patient_ids: list[str]
    enrolled_at: np.ndarray  # int64 per participant
    withdrawn_at: np.ndarray  # int64 per participant, -1 when no withdrawal in the file
    ended: np.ndarray  # bool per participant: terminal event in the file
    completed_visits: np.ndarray  # int64 per participant (applied VISIT_COMPLETED)
    missed_visits: np.ndarray  # int64 per participant (applied VISIT_MISSED)
    last_event_time: int
    horizon_days: int
    report: dict = field(default_factory=dict)

    def days_observed(self) -> np.ndarray:
        """Days after each row for which the file tells what happened (inf if ended)."""
        left = (self.last_event_time - self.event_time) / MS_PER_DAY
        return np.where(self.ended[self.patient], np.inf, left)

    def days_to_withdrawal(self) -> np.ndarray:
        """Days from each row to its participant's withdrawal (inf if none in the file)."""
        w = self.withdrawn_at[self.patient].astype(np.float64)
        t = self.event_time
        return np.where(w >= t, (w - t) / MS_PER_DAY, np.inf)


class _Rejects:
    """Bad records: a count by reason and the first few by number (the report)."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()
        self.first: list[dict] = []

    def add(self, number: int, reason: str) -> None:
        self.by_reason[reason.split(":", 1)[0]] += 1
        if len(self.first) < FIRST_REJECTS_KEPT:
            self.first.append({"number": number, "reason": reason})

    def to_json(self) -> dict:
        return {
            "count": sum(self.by_reason.values()),
            "by_reason": dict(self.by_reason.most_common()),
            "first": self.first,
        }


def collect(
    records: Iterable[Record],
    horizon_days: int,
    progress: Callable[[int], None] | None = None,
) -> RowTable:
    """One pass over ``records`` into a ``RowTable``.

    ``progress(records_read)`` is called every ``CHUNK_ROWS`` rows. Rows equal
    ``features.build_rows`` on the same events, cast to float32. They go
    straight into one growing float32 buffer (``array('f')``: 4 bytes a value,
    no Python object kept per row; a large buffer grows in place), which
    becomes ``X`` without a copy.
    """
    states: dict[str, PatientState] = {}
    code: dict[str, int] = {}
    ids: list[str] = []
    enrolled: list[int] = []
    withdrawn: list[int] = []
    ended: list[bool] = []
    completed: list[int] = []
    missed: list[int] = []
    rejects = _Rejects()
    counts: Counter[str] = Counter()
    values = array("f")  # the feature rows, row-major
    # Per-row columns as typed arrays (8 or 4 bytes a row; a list of ints costs ~36).
    index = array("q")
    patient = array("i")
    times = array("q")
    to_end = array("d")
    last_time = -(2**62)
    n_records = 0
    for number, event, error in records:
        n_records += 1
        if error is not None or event is None:
            rejects.add(number, error or "empty record")
            continue
        pid = event.get("patient_id")
        c = code.get(pid)
        if c is not None and ended[c]:
            counts["after_end"] += 1  # the state was freed at the end: nothing more to learn
            continue
        try:
            state, outcome = apply(states.get(pid), event)
        except ModelError as exc:
            rejects.add(number, f"{exc.reason}: {exc}")
            continue
        if outcome is not Outcome.APPLIED:
            counts[outcome.value] += 1
            continue
        t = event["event_time"]
        last_time = max(last_time, t)
        if c is None:
            c = code[pid] = len(ids)
            ids.append(pid)
            enrolled.append(state.enrolled_at)
            withdrawn.append(-1)
            ended.append(False)
            completed.append(0)
            missed.append(0)
        kind = event["event_type"]
        if kind in TERMINAL:
            ended[c] = True
            if kind == "WITHDRAWN":
                withdrawn[c] = t
            states.pop(pid, None)
            continue
        states[pid] = state
        if kind == "VISIT_COMPLETED":
            completed[c] += 1
        elif kind == "VISIT_MISSED":
            missed[c] += 1
        values.extend(feature_list(state, t))
        index.append(number - 1)
        patient.append(c)
        times.append(t)
        to_end.append(days_to_planned_end(state, t))
        if progress is not None and len(times) % CHUNK_ROWS == 0:
            progress(n_records)
    event_time = np.frombuffer(times, dtype=np.int64)
    patient_arr = np.frombuffer(patient, dtype=np.int32)
    withdrawn_at = np.array(withdrawn, dtype=np.int64)
    ended_arr = np.array(ended, dtype=bool)
    y, observed = label(event_time, patient_arr, withdrawn_at, ended_arr, last_time, horizon_days)
    report = {
        "records": n_records,
        "rows": len(times),
        "censored_rows": int((~observed).sum()),
        "duplicates": counts["duplicate"],
        "after_end": counts["after_end"],
        "participants_still_active": int((~ended_arr).sum()),
        "rejected": rejects.to_json(),
    }
    return RowTable(
        X=np.frombuffer(values, dtype=np.float32).reshape(-1, N_FEATURES),
        event_index=np.frombuffer(index, dtype=np.int64),
        patient=patient_arr,
        event_time=event_time,
        days_to_end=np.frombuffer(to_end, dtype=np.float64),
        y=y,
        observed=observed,
        patient_ids=ids,
        enrolled_at=np.array(enrolled, dtype=np.int64),
        withdrawn_at=withdrawn_at,
        ended=ended_arr,
        completed_visits=np.array(completed, dtype=np.int64),
        missed_visits=np.array(missed, dtype=np.int64),
        last_event_time=int(last_time),
        horizon_days=horizon_days,
        report=report,
    )
