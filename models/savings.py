"""Expected net savings of the alert policy against no outreach, on held-out rows.

Why a module: a savings figure is only worth what its definition is, so the
definition is written once, here, and the model card quotes it (``DEFINITION``).

1. Each participant's rows are walked in event-time order and the stream's alert
   policy is applied to them exactly (``models.alerts.decide_after``, the rule
   ``decide`` uses): a HIGH or CRITICAL score raises an alert unless an alert was
   raised within the cooldown, except when the tier escalates above the last
   alerted one.
2. Every alert is one outreach and costs its tier's outreach
   (``CostAssumptions.outreach_usd``).
3. An outreach on a row whose label is 1 (the participant withdrew within H days
   of that row) could have prevented that withdrawal, with probability
   ``efficacy``. A participant's withdrawal is preventable at most once however
   many alerts preceded it; repeated outreaches do not compound.
4. Expected net saving = efficacy x preventable withdrawals x replacement cost -
   total outreach cost, reported per 1,000 participants of the rows given, with a
   sensitivity table over efficacy and the break-even efficacy (net saving 0).

Two participants, costs HIGH $600 and CRITICAL $1,500, a 30-day cooldown: the
first is HIGH on day 0 (alert), HIGH on day 10 (in the cooldown: none) and
CRITICAL on day 20 (escalation: alert) and withdraws by day 30; the second is
HIGH on day 40 (alert) and stays.

>>> from trialwatch.models.alerts import TIER_RANK
>>> day = 86_400_000
>>> block = outreach(
...     patient=np.array([0, 0, 0, 1, 1]),
...     event_time=np.array([0, 10, 20, 0, 40]) * day,
...     y=np.array([0, 1, 1, 0, 0]),
...     rank=np.array([TIER_RANK[t] for t in ("HIGH", "HIGH", "CRITICAL", "LOW", "HIGH")]),
... )
>>> block["alerts"], block["outreach_cost_usd"], block["preventable_withdrawals"]
({'HIGH': 2, 'CRITICAL': 1, 'total': 3}, 2700.0, 1)
>>> round(block["net_savings_usd"], 2)  # 0.3 x 1 x 19,533 - 2,700
3159.9
>>> round(block["per_1000"]["net_savings_usd"])  # two participants: x 500
1579950
>>> round(block["break_even_efficacy"], 4)  # 2,700 / 19,533
0.1382
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trialwatch.models.alerts import TIER_ORDER, TIER_RANK, AlertPolicy, decide_after
from trialwatch.models.economics import REPLACEMENT_COST_SOURCE
from trialwatch.models.tiers import EFFICACY_SOURCE, OUTREACH_SOURCE, CostAssumptions

EFFICACY_GRID = (0.1, 0.2, 0.3, 0.4, 0.5)
PER_PARTICIPANTS = 1_000
SEED_CLAIM = "$258K savings per 1,000 patients"

DEFINITION = (
    "expected net savings against no outreach: each participant's rows in event-time order, "
    "the stream's alert policy applied exactly (HIGH/CRITICAL raise an alert unless within "
    "the cooldown of the last alert, except escalation); each alert is one outreach at its "
    "tier's cost; an outreach on a row whose participant withdrew within H days could prevent "
    "that withdrawal with probability efficacy, each withdrawal preventable at most once; "
    "net = efficacy x preventable withdrawals x replacement cost - outreach cost, per 1,000 "
    "participants"
)


def tier_ranks(p: np.ndarray, thresholds: Mapping[str, float]) -> np.ndarray:
    """Tier rank (index into ``TIER_ORDER``) per probability: ``Tiers.tier``, vectorized."""
    ranks = np.zeros(len(p), dtype=np.int8)
    for tier in ("MEDIUM", "HIGH", "CRITICAL"):  # ascending: the highest tier reached wins
        ranks[np.asarray(p) >= thresholds[tier]] = TIER_RANK[tier]
    return ranks


def replay_alerts(
    patient: np.ndarray, event_time: np.ndarray, rank: np.ndarray, policy: AlertPolicy
) -> np.ndarray:
    """Rank of the alert each row raises (-1: none), as the stream would raise them.

    Rows are taken per participant in event-time order (ties in row order). Only
    rows at or above the policy's tier can change anything, so only they are walked.
    """
    n = len(patient)
    order = np.lexsort((np.arange(n), event_time, patient))
    alerted = np.full(n, -1, dtype=np.int8)
    last: dict[int, tuple[str, int]] = {}
    for i in order[rank[order] >= TIER_RANK[policy.min_tier]].tolist():
        c, at, tier = int(patient[i]), int(event_time[i]), TIER_ORDER[rank[i]]
        last_tier, last_at = last.get(c, (None, None))
        decision = decide_after(last_tier, last_at, tier, at, policy)
        if decision is not None:
            alerted[i] = rank[i]
            last[c] = (tier, at)
    return alerted


def outreach(
    patient: np.ndarray,
    event_time: np.ndarray,
    y: np.ndarray,
    rank: np.ndarray,
    costs: CostAssumptions | None = None,
    policy: AlertPolicy | None = None,
    participants: int | None = None,
    withdrawals: int | None = None,
    efficacies: Sequence[float] = EFFICACY_GRID,
) -> dict:
    """One policy's outreach, preventable withdrawals and net savings (see the module).

    ``participants`` and ``withdrawals`` default to those seen in the rows (a
    withdrawal = a participant with a positive row); pass them when the rows do
    not show every participant or withdrawal of the population the figure is for.
    """
    costs = costs or CostAssumptions()
    policy = policy or AlertPolicy()
    patient, y, rank = np.asarray(patient), np.asarray(y), np.asarray(rank)
    alerted = replay_alerts(patient, np.asarray(event_time), rank, policy)
    counts = {
        TIER_ORDER[r]: int((alerted == r).sum())
        for r in range(TIER_RANK[policy.min_tier], len(TIER_ORDER))
    }
    cost = float(sum(costs.outreach_usd[t] * k for t, k in counts.items()))
    preventable = len(np.unique(patient[(alerted >= 0) & (y == 1)]))
    n = len(np.unique(patient)) if participants is None else participants
    withdrew = len(np.unique(patient[y == 1])) if withdrawals is None else withdrawals
    at_stake = preventable * costs.missed_dropout_usd

    def net(efficacy: float) -> float:
        return efficacy * at_stake - cost

    scale = PER_PARTICIPANTS / n if n else 0.0
    return {
        "participants": int(n),
        "alerts": {**counts, "total": sum(counts.values())},
        "outreach_cost_usd": cost,
        "withdrawals": int(withdrew),
        "preventable_withdrawals": preventable,
        "efficacy": costs.efficacy,
        "net_savings_usd": net(costs.efficacy),
        "per_1000": {
            "alerts": sum(counts.values()) * scale,
            "outreach_cost_usd": cost * scale,
            "withdrawals": withdrew * scale,
            "preventable_withdrawals": preventable * scale,
            "expected_prevented_withdrawals": costs.efficacy * preventable * scale,
            "net_savings_usd": net(costs.efficacy) * scale,
        },
        "net_savings_per_1000_by_efficacy": {f"{e:g}": net(e) * scale for e in efficacies},
        "break_even_efficacy": cost / at_stake if at_stake else None,
    }


def savings_card(
    patient: np.ndarray,
    event_time: np.ndarray,
    y: np.ndarray,
    rank: np.ndarray,
    horizon_days: int,
    costs: CostAssumptions | None = None,
    policy: AlertPolicy | None = None,
    participants: int | None = None,
    withdrawals: int | None = None,
) -> dict:
    """The model card's savings section: the model's tiers, and a naive policy beside them.

    The naive policy gives everyone the HIGH outreach at their first scored event
    and again whenever the cooldown has passed (every row treated as HIGH), at the
    same efficacy: what alerting buys over outreach to all.
    """
    costs = costs or CostAssumptions()
    policy = policy or AlertPolicy()
    common = {
        "costs": costs,
        "policy": policy,
        "participants": participants,
        "withdrawals": withdrawals,
    }
    model = outreach(patient, event_time, y, rank, **common)
    everyone = np.full(len(rank), TIER_RANK["HIGH"], dtype=np.int8)
    naive = outreach(patient, event_time, y, everyone, **common)
    per_1000 = model["per_1000"]["net_savings_usd"]
    return {
        "definition": DEFINITION.replace("H days", f"{horizon_days} days"),
        "rows": "the test split's labelled rows (censored rows, each participant's last, "
        "are left out with their cost and benefit; the alerts before them are unchanged)",
        "policy": {
            "min_tier": policy.min_tier,
            "cooldown_days": policy.cooldown_days,
            "escalation": "a tier above the last alert's alerts even within the cooldown",
        },
        "assumptions": {
            "replacement_cost_usd": costs.missed_dropout_usd,
            "replacement_cost_source": REPLACEMENT_COST_SOURCE,
            "outreach_usd": dict(costs.outreach_usd),
            "outreach_source": OUTREACH_SOURCE,
            "efficacy": costs.efficacy,
            "efficacy_source": EFFICACY_SOURCE,
            "prevention": "an outreach can prevent only a withdrawal within the horizon of "
            "its row; each participant's withdrawal counts once",
        },
        "model": model,
        "naive_everyone_high_every_cooldown": naive,
        "seed_claim_comparison": (
            f"the seed system claimed {SEED_CLAIM} with no stated definition; this card's "
            f"figure, {_usd(per_1000)} per 1,000 test participants at efficacy "
            f"{costs.efficacy:g}, charges every alert the stream would raise, credits a "
            f"withdrawal only when an alert fell within {horizon_days} days before it, "
            "counts it once, and scales by an assumed efficacy (see the sensitivity table)"
        ),
    }


def _usd(x: float) -> str:
    """-$1,234 rather than $-1,234."""
    return f"{'-' if x < 0 else ''}${abs(x):,.0f}"
