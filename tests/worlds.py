"""Simulated worlds the lifecycle tests share."""

from __future__ import annotations

from trialwatch.producers.simulator import SimulationConfig

# One trial of a population the model was not trained for: 2.5x the baseline
# hazard, older, farther from its sites, less engaged. The quick model predicts
# about half the withdrawals that happen in it.
SHIFTED_TRIAL = SimulationConfig(
    seed=99,
    n_participants=3_000,
    n_trials=1,
    sites_per_trial=6,
    hazard_scale=2.5,
    age_shift=6.0,
    distance_scale=1.8,
    engagement_mean=0.8,
)


def split_months(events: list[dict], share: float = 0.45) -> tuple[list[dict], list[dict], int]:
    """The events before and after ``share`` of the history's time span, and the cut."""
    times = sorted(e["event_time"] for e in events)
    cut = times[0] + int(share * (times[-1] - times[0]))
    return (
        [e for e in events if e["event_time"] < cut],
        [e for e in events if e["event_time"] >= cut],
        cut,
    )
