"""Labels from the event stream: does the participant withdraw within H days?

A label is known when a withdrawal falls inside the horizon (positive), or when
the history covers the whole horizon: the participant's terminal event is in it
(observed to the end), or the horizon ends before the history's last event
time. Otherwise the row is censored: not a negative, left out of fits and
metrics (a participant still active at the end of an export may yet withdraw).
"""

from __future__ import annotations

import numpy as np

from trialwatch.schemas.contract import MS_PER_DAY


def label(
    event_time: np.ndarray,
    patient: np.ndarray,
    withdrawn_at: np.ndarray,
    ended: np.ndarray,
    last_time: int,
    horizon_days: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(y, observed) per row: y = withdrawal in (t, t + H]; observed = the label is known.

    ``patient`` indexes the per-participant ``withdrawn_at`` (-1 = none seen)
    and ``ended`` (terminal event seen); ``last_time`` is the history's end.
    """
    w = withdrawn_at[patient]
    horizon = horizon_days * MS_PER_DAY
    y = (w > event_time) & (w <= event_time + horizon)
    observed = y | ended[patient] | (event_time + horizon <= last_time)
    return y.astype(np.int8), observed
