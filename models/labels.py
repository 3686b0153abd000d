"""Labels from the event stream: does the participant withdraw within H days?"""

from __future__ import annotations

import numpy as np

from trialwatch.models.features import RowSet
from trialwatch.schemas.contract import MS_PER_DAY


def withdrawal_times(events: list[dict]) -> dict[str, int]:
    return {e["patient_id"]: e["event_time"] for e in events if e["event_type"] == "WITHDRAWN"}


def within(rows: RowSet, withdrawn: dict[str, int], horizon_days: int) -> np.ndarray:
    """1 where the row's patient withdraws in (t, t + H days], else 0."""
    w = np.array([withdrawn.get(p, -1) for p in rows.patient_id], dtype=np.int64)
    t = rows.event_time
    return ((w > t) & (w <= t + horizon_days * MS_PER_DAY)).astype(np.int8)
