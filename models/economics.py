"""Per-phase trial economics: what a participant's data is worth to the study.

These are configuration with documented defaults, shared by the simulator (to
record the value a participant actually delivered) and by CLV scoring (to
predict it), so both use one definition of value.

Sources for the defaults (orders of magnitude, not quotes of one trial):
- Replacing a participant who drops out costs about $19,533 (industry figure
  widely cited from Tufts CSDD / Clinical Performance Partners analyses of
  per-patient recruitment cost). It is used as the value of a completed,
  evaluable participant in phases II-III and as the cost of a missed dropout.
- Per-visit value follows per-patient per-visit site budgets, which fall from
  early (dense, costly PK visits) to late phase (sparser, cheaper visits).
- The annual discount rate of 10% is a conventional cost of capital for
  drug-development cash flows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAYS_PER_YEAR = 365.25

REPLACEMENT_COST_USD = 19_533.0
REPLACEMENT_COST_SOURCE = (
    "cost of replacing a participant who drops out, about $19,533: an industry figure widely "
    "cited from Tufts CSDD / Clinical Performance Partners analyses of per-patient "
    "recruitment cost (an order of magnitude, not one trial's quote)"
)


@dataclass(frozen=True, slots=True)
class PhaseEconomics:
    """Value of one participant's remaining participation in a trial phase."""

    visit_value: float
    """Value (USD) of the data from one completed scheduled visit."""
    completion_value: float
    """Value (USD) of a participant who completes the protocol (evaluable)."""
    annual_discount_rate: float = 0.10


PHASE_ECONOMICS: dict[str, PhaseEconomics] = {
    "I": PhaseEconomics(visit_value=1_500.0, completion_value=15_000.0),
    "II": PhaseEconomics(visit_value=1_200.0, completion_value=REPLACEMENT_COST_USD),
    "III": PhaseEconomics(visit_value=900.0, completion_value=REPLACEMENT_COST_USD),
    "IV": PhaseEconomics(visit_value=500.0, completion_value=10_000.0),
}


def discount_per_day(annual_rate: float) -> float:
    """Continuous daily discount rate equivalent to ``annual_rate`` compounded yearly."""
    return math.log1p(annual_rate) / DAYS_PER_YEAR


def discount_factor(days_ahead: float, annual_rate: float) -> float:
    """Present value of 1 USD received ``days_ahead`` days from now."""
    return math.exp(-discount_per_day(annual_rate) * max(days_ahead, 0.0))
