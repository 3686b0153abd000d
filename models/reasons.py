"""Human-readable reasons for the features that drive a score."""

from __future__ import annotations

import math

from trialwatch.models.features import ARM_CODE, FEATURE_NAMES, PHASE_CODE

_ARM = {v: k.lower() for k, v in ARM_CODE.items()}
_PHASE = {v: k for k, v in PHASE_CODE.items()}


def _n(value: float) -> int:
    return round(value)


PHRASES = {
    "intervals_enrolled": lambda v: f"{v:.1f} visit intervals since enrolment",
    "trial_progress": lambda v: f"{v:.0%} of scheduled visits resolved",
    "visit_compliance": lambda v: f"attended {v:.0%} of the visits expected by now",
    "missed_share": lambda v: f"missed {v:.0%} of the visits so far",
    "consecutive_missed": lambda v: f"missed the last {_n(v)} visit(s) in a row",
    "missed_last3": lambda v: f"missed {_n(v)} of the last 3 visits",
    "intervals_since_last_visit": lambda v: (
        f"{v:.1f} visit intervals since the last completed visit"
    ),
    "mean_late_days": lambda v: f"arrives {v:.1f} days late on average",
    "last_late_days": lambda v: f"last visit {v:.1f} days late",
    "ae_per_30d": lambda v: f"{v:.1f} adverse events per 30 days enrolled",
    "ae_max_grade": lambda v: f"worst adverse event grade {_n(v)}",
    "ae_grade_sum_30d": lambda v: f"adverse events totalling grade {_n(v)} in the last 30 days",
    "serious_ae_30d": lambda v: (
        "a serious adverse event in the last 30 days"
        if v
        else "no serious adverse event in the last 30 days"
    ),
    "days_since_last_ae": lambda v: f"last adverse event {_n(v)} days ago",
    "epro_last": lambda v: f"latest ePRO score {v:.0f}/100",
    "epro_change": lambda v: (
        f"ePRO score {'fell' if v < 0 else 'rose'} {abs(v):.0f} points since the first"
    ),
    "epro_trend": lambda v: (
        f"ePRO {'down' if v < 0 else 'up'} {abs(v):.0f} points vs recent answers"
    ),
    "days_since_last_epro": lambda v: f"no ePRO answer for {_n(v)} days",
    "unreached_contacts": lambda v: f"{_n(v)} unreached contact attempt(s)",
    "unreached_30d": lambda v: f"{_n(v)} unreached contact attempt(s) in 30 days",
    "consecutive_unreached": lambda v: f"the last {_n(v)} contact attempt(s) went unanswered",
    "age": lambda v: f"aged {_n(v)}",
    "sex": lambda v: "sex recorded at enrolment",
    "arm": lambda v: f"{_ARM.get(v, 'unknown')} arm",
    "phase": lambda v: f"phase {_PHASE.get(v, '?')} trial",
    "distance_km": lambda v: f"lives {v:.0f} km from the site",
    "visits_remaining": lambda v: f"{v:.1f} visit intervals until the planned end",
}
assert set(PHRASES) == set(FEATURE_NAMES), "every feature needs a phrase"


def reason_text(feature: str, value: float) -> str:
    """``missed 2 of the last 3 visits``; for a missing value, says so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"no data yet for {feature.replace('_', ' ')}"
    return PHRASES[feature](value)


# Features that describe the person, not their course in the trial: a view for people
# names them but never shows their value (pseudonymous ids only).
ENROLMENT_FEATURES = frozenset({"age", "sex", "distance_km", "arm"})


def shown_text(feature: str, value: float | None) -> str:
    """``reason_text`` for a screen or an export: an enrolment attribute's value stays out."""
    if feature in ENROLMENT_FEATURES:
        return f"an enrolment attribute ({feature.replace('_', ' ')})"
    return reason_text(feature, value)


def two_sided(contrib, x, k: int = 3, names=FEATURE_NAMES) -> dict[str, list[dict]]:
    """The top-k TreeSHAP drivers in BOTH directions.

    ``contrib`` is one row of LightGBM ``pred_contrib`` (one log-odds contribution
    per feature, then the expected value); ``x`` the feature row. ``raising``: the
    largest positive contributions, largest first; ``lowering``: the most negative,
    most negative first. A zero contribution is in neither. Ties keep feature order.
    """
    n = len(names)
    values = [float(c) for c in list(contrib)[:n]]
    order_up = sorted((i for i in range(n) if values[i] > 0), key=lambda i: -values[i])
    order_down = sorted((i for i in range(n) if values[i] < 0), key=lambda i: values[i])

    def reason(i: int) -> dict:
        value = float(x[i])
        return {
            "feature": names[i],
            "value": value,
            "contribution": values[i],
            "text": reason_text(names[i], value),
        }

    base = float(list(contrib)[n]) if len(contrib) > n else None
    return {
        "raising": [reason(i) for i in order_up[:k]],
        "lowering": [reason(i) for i in order_down[:k]],
        "base_log_odds": base,
    }
