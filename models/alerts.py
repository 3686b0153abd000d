"""The alert policy: pure, and driven by EVENT time, so replays give the same alerts.

An alert is raised when the tier is HIGH or CRITICAL and either no alert was
raised yet, the cooldown (event-time days since the last alert) has passed, or
the tier escalated above the last alerted tier (HIGH -> CRITICAL) even within
the cooldown. ``alert_id`` is derived from the triggering event and tier, so
re-delivery and replay produce the same id, which Redis then deduplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from trialwatch.models.state import PatientState
from trialwatch.schemas.contract import MS_PER_DAY

TIER_ORDER = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIER_ORDER)}
ALERT_NAMESPACE = uuid.UUID("6f1c1d0e-7a51-4f59-9a63-2b1f6a0c9e11")


@dataclass(frozen=True)
class AlertPolicy:
    cooldown_days: float = 30.0
    min_tier: str = "HIGH"


@dataclass(frozen=True)
class AlertDecision:
    tier: str
    previous_tier: str | None


def decide(
    state: PatientState, tier: str, event_time: int, policy: AlertPolicy
) -> AlertDecision | None:
    """Should this score raise an alert? ``state`` holds the last alert's tier and time."""
    return decide_after(state.last_alert_tier, state.last_alert_at, tier, event_time, policy)


def decide_after(
    last_tier: str | None, last_at: int | None, tier: str, event_time: int, policy: AlertPolicy
) -> AlertDecision | None:
    """``decide`` on the last alert's tier and time alone, without a ``PatientState``:
    ``models.savings`` replays the policy over the test split with it, so the model
    card's savings and the stream's alerts follow one rule."""
    if TIER_RANK[tier] < TIER_RANK[policy.min_tier]:
        return None
    if last_tier is None or last_at is None:
        return AlertDecision(tier, None)
    if TIER_RANK[tier] > TIER_RANK[last_tier]:
        return AlertDecision(tier, last_tier)
    if event_time - last_at >= policy.cooldown_days * MS_PER_DAY:
        return AlertDecision(tier, last_tier)
    return None


def alert_id(event_id: str, tier: str) -> str:
    """Deterministic id of the alert an event raised at a tier."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{event_id}|{tier}"))


def budget_week(event_time: int) -> int:
    """The event-time week an alert counts against in a site's page budget."""
    return event_time // (7 * MS_PER_DAY)


def pages_without_budget(tier: str, per_site_week: int) -> bool:
    """CRITICAL always pages; with no budget (0) every alert pages."""
    return tier == "CRITICAL" or per_site_week <= 0
