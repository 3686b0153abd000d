"""Risk tiers chosen by expected cost, with a recommended action per tier.

Each tier above LOW pairs with an outreach of rising cost. Acting on a row costs
the outreach; a dropout costs ``C_FN`` (replacing a participant, about $19,533:
models.economics.REPLACEMENT_COST_USD) unless the outreach prevents it, which it
does with probability ``efficacy``. Acting pays off when p * e * C_FN > C_FP, so
the break-even is p* = C_FP / (C_FP + e * C_FN). With calibrated probabilities
the cost-minimising threshold on validation data sits near p*; we pick it by
minimising the expected cost on validation rows and report p* beside it.

Defaults (assumptions, stated as such): a coordinator phone call $150, a
retention visit with travel support $600, an intensive package (home visit,
retention specialist, schedule flexibility) $1,500; efficacy 0.30, in the range
reported for retention interventions (Cochrane review of strategies to improve
retention in randomised trials, Gillies et al. 2021, finds modest effects that
vary widely; 0.3 is an optimistic round figure for targeted outreach).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from trialwatch.models.economics import REPLACEMENT_COST_USD

EFFICACY_SOURCE = (
    "0.30 = share of targeted outreaches that keep a participant who would otherwise "
    "withdraw: an optimistic round figure in the range of retention interventions "
    "(Gillies et al. 2021, Cochrane review of strategies to improve retention in randomised "
    "trials: modest effects that vary widely); an assumption, hence the sensitivity table"
)
OUTREACH_SOURCE = (
    "assumed costs per outreach, not quotes: coordinator phone call $150 (MEDIUM), retention "
    "visit with travel support $600 (HIGH), intensive package: home visit, retention "
    "specialist, schedule flexibility $1,500 (CRITICAL)"
)

ACTIONS = {
    "LOW": "no action: routine follow-up",
    "MEDIUM": "coordinator phone call before the next visit",
    "HIGH": "retention visit or call within 48 hours; offer travel support and "
    "schedule flexibility",
    "CRITICAL": "escalate today: PI/coordinator contact, home visit or remote visit option, "
    "retention specialist",
}


@dataclass(frozen=True)
class CostAssumptions:
    missed_dropout_usd: float = REPLACEMENT_COST_USD
    efficacy: float = 0.30
    outreach_usd: dict[str, float] = field(
        default_factory=lambda: {"MEDIUM": 150.0, "HIGH": 600.0, "CRITICAL": 1_500.0}
    )

    def break_even(self, tier: str) -> float:
        c_fp = self.outreach_usd[tier]
        return c_fp / (c_fp + self.efficacy * self.missed_dropout_usd)


@dataclass(frozen=True)
class Tiers:
    thresholds: dict[str, float]  # lower bound of MEDIUM, HIGH, CRITICAL
    break_even: dict[str, float]
    actions: dict[str, str]

    def tier(self, p: float) -> str:
        t = self.thresholds
        if p >= t["CRITICAL"]:
            return "CRITICAL"
        if p >= t["HIGH"]:
            return "HIGH"
        if p >= t["MEDIUM"]:
            return "MEDIUM"
        return "LOW"

    def action(self, tier: str) -> str:
        return self.actions[tier]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Tiers:
        return cls(dict(data["thresholds"]), dict(data["break_even"]), dict(data["actions"]))


def expected_cost(
    p_act: np.ndarray, y: np.ndarray, threshold: float, c_fp: float, c: CostAssumptions
) -> float:
    act = p_act >= threshold
    prevented = c.efficacy * c.missed_dropout_usd * (act & (y == 1)).sum()
    return float(c_fp * act.sum() + c.missed_dropout_usd * y.sum() - prevented) / len(y)


def choose_tiers(
    p_valid: np.ndarray, y_valid: np.ndarray, costs: CostAssumptions | None = None
) -> Tiers:
    """Thresholds minimising expected cost on validation, kept increasing."""
    costs = costs or CostAssumptions()
    candidates = np.unique(np.quantile(p_valid, np.linspace(0.0, 0.999, 400)))
    thresholds: dict[str, float] = {}
    floor = 0.0
    for tier in ("MEDIUM", "HIGH", "CRITICAL"):
        c_fp = costs.outreach_usd[tier]
        usable = candidates[candidates > floor]
        if len(usable) == 0:
            usable = np.array([max(floor, costs.break_even(tier))])
        cost = [expected_cost(p_valid, y_valid, t, c_fp, costs) for t in usable]
        best = float(usable[int(np.argmin(cost))])
        thresholds[tier] = best
        floor = best
    return Tiers(
        thresholds=thresholds,
        break_even={t: costs.break_even(t) for t in ("MEDIUM", "HIGH", "CRITICAL")},
        actions=dict(ACTIONS),
    )
