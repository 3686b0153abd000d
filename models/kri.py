"""Site key risk indicators (KRIs): pure folds of site deltas, and funnel-plot flags.

Risk-based quality management (ICH E6(R3), section 3.10 and Annex 1) asks a
sponsor to watch sites, not only participants: a site that misses visits,
loses participants or reports adverse events at a rate unlike the rest of its
study is examined. This module computes those numbers from the same events
the participant model reads, in three pure steps the stream runs as three
agents (and ``producers.sites`` runs offline):

1. ``site_delta(state, event)``: the site-relevant effect of ONE applied
   event, stamped with the participant's ``seq`` (``state.n_applied``, which
   grows by one per applied event of that participant).
2. ``fold_site(book, delta)``: a site's counters. A delta whose seq is not
   above the last one seen for its participant is refused (None), so
   re-delivery and replay change nothing. Counters are sums and the window
   keeps event-day buckets relative to the newest event time (``as_of``), so
   any interleaving of participants gives the same book. Only event time is
   read, never the wall clock.
3. ``fold_trial(book, summary)``: a trial's latest ABSOLUTE summary per site
   (replacing one with itself is a no-op), every site's z-scores against the
   pooled trial, flags, a status per site, and a SiteAlert when a site turns
   RED or returns to GREEN after RED.

The flag is the funnel plot of gsm, Gilead's open RBQM suite
(``Analyze_NormalApprox`` / ``Flag_NormalApprox``; method described in the
gsm "KRI Method" vignette): a site's rate is compared with the pooled study
rate by a normal approximation of the binomial (proportions) or the Poisson
(rates per exposure),

    proportion: z = (x/n - p0) / sqrt(phi * p0 * (1 - p0) / n)
    rate:       z = (x/e - r0) / sqrt(phi * r0 / e)

where p0 = sum(x) / sum(n) and r0 = sum(x) / sum(e) pool every site of the
trial, and phi is the over-dispersion factor: gsm estimates it as the mean of
the squared UNADJUSTED z-scores (phi = 1) over the sites, so that a study
whose sites all vary more than chance does not flag all of them (the
multiplicative over-dispersion of Spiegelhalter DJ, "Funnel plots for
comparing institutional performance", Stat Med 2005;24:1185-1202). Flags
use gsm's default thresholds (-3, -2, 2, 3), in both directions: |z| >= 2
amber, |z| >= 3 red. A LOW AE rate is flagged too, as possible
under-reporting. A site whose denominator is below the KRI's minimum is
"none" (too little data to judge).

Two guards on phi, which gsm does not have (see ``overdispersion``): it is
never below 1, and it is 1 unless at least ``PHI_MIN_SITES`` sites are
judged. With phi = mean(z0^2) over N sites, sum(z^2) = N, so no site can
reach |z| >= 3 unless N >= 9: a 5-site trial could never show a red site.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from trialwatch.models.state import PatientState
from trialwatch.schemas.contract import MS_PER_DAY

WINDOW_DAYS = 30  # missed-visit % window, in event-time days ending at as_of's day
AMBER_Z = 2.0
RED_Z = 3.0
PHI_MIN_SITES = 10  # fewer judged sites: phi = 1 (see the module docstring)
Z_DECIMALS = 9  # z is rounded before comparing, so z = 2 by hand is amber
SITE_ALERT_NAMESPACE = uuid.UUID("3b0f6f5c-5d0e-4f0a-9c1e-7f1d2a9b8c41")

VISITS = frozenset({"VISIT_COMPLETED", "VISIT_MISSED"})
DELTA_KINDS = frozenset(
    {"ENROLLED", *VISITS, "ADVERSE_EVENT", "CONTACT_ATTEMPT", "WITHDRAWN", "COMPLETED"}
)  # EPRO_SUBMITTED changes no site number
STATUSES = ("GREEN", "AMBER", "RED")
FLAGS = ("green", "amber", "red", "none")


@dataclass(frozen=True, slots=True)
class KriSpec:
    """One flagged indicator: ``numerator`` / ``denominator`` name SiteSummary
    fields; ``value`` = numerator / denominator * ``scale`` in ``unit``."""

    name: str
    label: str
    kind: str  # "proportion" | "rate"
    numerator: str
    denominator: str
    unit: str
    scale: float
    min_denominator: float
    source: str


KRIS: tuple[KriSpec, ...] = (
    KriSpec(
        "missed_visits", "Missed visits", "proportion", "window_missed",
        "window_resolved", "% of visits", 100.0, 10,
        f"Missed of visits resolved in the last {WINDOW_DAYS} event-time days; "
        "protocol compliance (ICH E6(R3) RBQM), scored with gsm's funnel",
    ),
    KriSpec(
        "early_termination", "Early termination", "proportion", "early_terminated",
        "enrolled", "% of enrolled", 100.0, 10,
        "Participants withdrawn before completing, of those enrolled; "
        "gsm kri0006 (study discontinuation)",
    ),
    KriSpec(
        "ae_rate", "Adverse events", "rate", "ae", "participant_days",
        "per 100 participant-days", 100.0, 300,
        "Adverse events per participant-day on study; gsm kri0001",
    ),
    KriSpec(
        "sae_rate", "Serious adverse events", "rate", "sae", "participant_days",
        "per 100 participant-days", 100.0, 300,
        "Serious adverse events per participant-day on study; gsm kri0002",
    ),
    KriSpec(
        "unreached_contacts", "Unreached contacts", "proportion", "unreached",
        "contacts", "% of attempts", 100.0, 10,
        "Contact attempts that did not reach the participant, of all attempts; "
        "trialwatch's retention signal, scored with gsm's funnel",
    ),
)  # fmt: skip


# ------------------------------------------------------------------ deltas


def site_delta(state: PatientState, event: dict) -> dict | None:
    """The site-relevant effect of ONE applied event (None: EPRO_SUBMITTED).

    Call it with the state ``models.state.apply`` returned for an APPLIED event
    (or a replayed duplicate's, which repeats the same seq and is refused by
    ``fold_site``). ``enrolled_at`` rides on every delta so a site book can
    count a participant whose earlier deltas it never saw.
    """
    kind = event["event_type"]
    if kind not in DELTA_KINDS:
        return None
    return {
        "trial_id": state.trial_id,
        "site_id": state.site_id,
        "patient_id": state.patient_id,
        "seq": state.n_applied,
        "event_time": int(event["event_time"]),
        "kind": kind,
        "serious": kind == "ADVERSE_EVENT" and bool(event.get("serious")),
        "reached": kind == "CONTACT_ATTEMPT" and bool(event.get("reached")),
        "enrolled_at": state.enrolled_at,
    }


# --------------------------------------------------------------- site book


@dataclass(frozen=True, slots=True)
class SiteBook:
    """Counters of one trial|site. Participant-days are kept as two integer
    sums so they never depend on the order deltas arrive in:
    days on study = (active * as_of - active_enrolled_ms + ended_ms) / day."""

    trial_id: str
    site_id: str
    as_of: int  # newest event time folded in
    n_deltas: int = 0  # applied deltas: orders this site's summaries
    enrolled: int = 0
    early_terminated: int = 0
    completed: int = 0
    ae: int = 0
    sae: int = 0
    contacts: int = 0
    unreached: int = 0
    active_enrolled_ms: int = 0  # sum of enrolled_at of active participants
    ended_ms: int = 0  # sum of time on study of ended participants
    days: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # day: (resolved, missed)
    seen: Mapping[str, int] = field(default_factory=dict)  # patient_id: last seq

    @property
    def active(self) -> int:
        return self.enrolled - self.early_terminated - self.completed


def fold_site(book: SiteBook | None, delta: dict) -> SiteBook | None:
    """The book after ``delta``; None when its seq was applied already."""
    if book is None:
        book = SiteBook(delta["trial_id"], delta["site_id"], as_of=delta["event_time"])
    elif (delta["trial_id"], delta["site_id"]) != (book.trial_id, book.site_id):
        raise ValueError(f"delta of {delta['trial_id']}|{delta['site_id']} for another site")
    patient, seq = delta["patient_id"], delta["seq"]
    first_sight = patient not in book.seen
    if seq <= book.seen.get(patient, 0):
        return None
    changes = _participant_changes(book, delta, first_sight)
    as_of = max(book.as_of, delta["event_time"])
    return replace(
        book,
        **changes,
        as_of=as_of,
        n_deltas=book.n_deltas + 1,
        days=_window_days(book.days, delta, as_of),
        seen={**book.seen, patient: seq},
    )


def _participant_changes(book: SiteBook, delta: dict, first_sight: bool) -> dict:
    """Counter changes of one delta (the window is ``_window_days``)."""
    kind, t, enrolled_at = delta["kind"], delta["event_time"], delta["enrolled_at"]
    enrolled = book.enrolled + first_sight
    active_ms = book.active_enrolled_ms + (enrolled_at if first_sight else 0)
    changes: dict = {"enrolled": enrolled, "active_enrolled_ms": active_ms}
    if kind == "ADVERSE_EVENT":
        changes.update(ae=book.ae + 1, sae=book.sae + delta["serious"])
    elif kind == "CONTACT_ATTEMPT":
        unreached = book.unreached + (not delta["reached"])
        changes.update(contacts=book.contacts + 1, unreached=unreached)
    elif kind in ("WITHDRAWN", "COMPLETED"):
        counter = "early_terminated" if kind == "WITHDRAWN" else "completed"
        changes[counter] = getattr(book, counter) + 1
        changes["active_enrolled_ms"] = active_ms - enrolled_at
        changes["ended_ms"] = book.ended_ms + max(t - enrolled_at, 0)
    return changes


def _in_window(day: int, as_of: int) -> bool:
    return day > as_of // MS_PER_DAY - WINDOW_DAYS


def _window_days(days: Mapping[int, tuple[int, int]], delta: dict, as_of: int) -> dict:
    """Buckets of the WINDOW_DAYS event days ending at as_of's day: a visit older
    than that is dropped whenever it arrives, so arrival order does not matter."""
    kept = {day: counts for day, counts in days.items() if _in_window(day, as_of)}
    day = delta["event_time"] // MS_PER_DAY
    if delta["kind"] in VISITS and _in_window(day, as_of):
        resolved, missed = kept.get(day, (0, 0))
        kept[day] = (resolved + 1, missed + (delta["kind"] == "VISIT_MISSED"))
    return kept


def site_summary(book: SiteBook) -> dict:
    """ABSOLUTE numbers as of ``book.as_of`` (a SiteSummary record)."""
    active = book.active
    on_study_ms = active * book.as_of - book.active_enrolled_ms + book.ended_ms
    in_window = [c for day, c in book.days.items() if _in_window(day, book.as_of)]
    return {
        "trial_id": book.trial_id,
        "site_id": book.site_id,
        "as_of": book.as_of,
        "n_deltas": book.n_deltas,
        "enrolled": book.enrolled,
        "active": active,
        "participant_days": on_study_ms / MS_PER_DAY,
        "window_resolved": sum(resolved for resolved, _ in in_window),
        "window_missed": sum(missed for _, missed in in_window),
        "early_terminated": book.early_terminated,
        "completed": book.completed,
        "ae": book.ae,
        "sae": book.sae,
        "contacts": book.contacts,
        "unreached": book.unreached,
    }


_BOOK_COUNTERS = (
    "as_of", "n_deltas", "enrolled", "early_terminated", "completed", "ae", "sae",
    "contacts", "unreached", "active_enrolled_ms", "ended_ms",
)  # fmt: skip


def book_to_record(book: SiteBook) -> dict:
    """A SiteBook record (schemas/site_book.v1.avsc); keys sorted, so equal
    books encode to equal bytes."""
    return {
        "trial_id": book.trial_id,
        "site_id": book.site_id,
        **{name: getattr(book, name) for name in _BOOK_COUNTERS},
        "days": [
            {"day": day, "resolved": r, "missed": m} for day, (r, m) in sorted(book.days.items())
        ],
        "seen": dict(sorted(book.seen.items())),
    }


def book_from_record(record: dict) -> SiteBook:
    return SiteBook(
        trial_id=record["trial_id"],
        site_id=record["site_id"],
        **{name: record[name] for name in _BOOK_COUNTERS},
        days={d["day"]: (d["resolved"], d["missed"]) for d in record["days"]},
        seen=dict(record["seen"]),
    )


# ------------------------------------------------------------ funnel plots


def funnel_z_proportion(x: float, n: float, p0: float, phi: float = 1.0) -> float:
    """gsm's normal-approximation z of x events in n against the pooled p0.

    0 when p0 is 0 or 1 (every site is alike: nothing to flag), as in gsm.
    """
    if n <= 0:
        raise ValueError("a proportion needs a positive denominator")
    if p0 <= 0.0 or p0 >= 1.0:
        return 0.0
    return (x / n - p0) / math.sqrt(phi * p0 * (1.0 - p0) / n)


def funnel_z_rate(x: float, exposure: float, r0: float, phi: float = 1.0) -> float:
    """gsm's normal-approximation z of x events over ``exposure`` against the
    pooled rate r0 (Poisson variance r0 / exposure); 0 when r0 is 0."""
    if exposure <= 0:
        raise ValueError("a rate needs a positive exposure")
    if r0 <= 0.0:
        return 0.0
    return (x / exposure - r0) / math.sqrt(phi * r0 / exposure)


def overdispersion(unadjusted_z: list[float]) -> float:
    """phi: gsm's mean of squared unadjusted z-scores, with two guards.

    At least 1 (Spiegelhalter 2005 inflates only over-dispersed data: sites
    that agree more than chance must not get tighter limits), and 1 when fewer
    than PHI_MIN_SITES sites are judged: with N sites, phi = mean(z0^2) caps
    every |z| at sqrt(N), so a small trial could never be red.
    """
    if len(unadjusted_z) < PHI_MIN_SITES:
        return 1.0
    return max(1.0, sum(z * z for z in unadjusted_z) / len(unadjusted_z))


def flag(z: float | None, denominator: float, min_denominator: float) -> str:
    """'red' at |z| >= 3, 'amber' at |z| >= 2 (either sign), else 'green';
    'none' when there is too little data to judge."""
    if z is None or denominator < min_denominator:
        return "none"
    size = round(abs(z), Z_DECIMALS)
    if size >= RED_Z:
        return "red"
    return "amber" if size >= AMBER_Z else "green"


def status_of(flags: list[str]) -> str:
    """RED if any KRI is red, AMBER if any is amber, else GREEN."""
    if "red" in flags:
        return "RED"
    return "AMBER" if "amber" in flags else "GREEN"


def _z(spec: KriSpec, x: float, n: float, pooled: float, phi: float) -> float:
    if spec.kind == "proportion":
        return funnel_z_proportion(x, n, pooled, phi)
    return funnel_z_rate(x, n, pooled, phi)


def kri_results(spec: KriSpec, sites: Mapping[str, dict]) -> dict[str, dict]:
    """Per site: value, study value, z, flag of one KRI against the pooled trial.

    Sums run over sites in sorted order, so the floats do not depend on the
    order the summaries arrived in.
    """
    ids = sorted(sites)
    xs = {s: sites[s][spec.numerator] for s in ids}
    ns = {s: sites[s][spec.denominator] for s in ids}
    total_n = sum(ns[s] for s in ids)
    pooled = sum(xs[s] for s in ids) / total_n if total_n > 0 else None
    z0 = {s: _z(spec, xs[s], ns[s], pooled, 1.0) for s in ids if ns[s] > 0 and pooled is not None}
    judged = [z0[s] for s in ids if s in z0 and ns[s] >= spec.min_denominator]
    phi = overdispersion(judged)
    results = {}
    for s in ids:
        z = None if s not in z0 else _z(spec, xs[s], ns[s], pooled, phi)
        results[s] = {
            "value": xs[s] / ns[s] * spec.scale if ns[s] > 0 else None,
            "study": pooled * spec.scale if pooled is not None else None,
            "z": z,
            "flag": flag(z, ns[s], spec.min_denominator),
            "numerator": xs[s],
            "denominator": ns[s],
        }
    return results


# -------------------------------------------------------------- trial book


@dataclass(frozen=True, slots=True)
class TrialBook:
    """The latest summary per site of one trial, each site's status, and the
    status of its last SiteAlert (what 'back to GREEN after RED' needs)."""

    trial_id: str
    sites: Mapping[str, dict] = field(default_factory=dict)  # site_id: SiteSummary
    status: Mapping[str, str] = field(default_factory=dict)  # site_id: GREEN|AMBER|RED
    last_alert: Mapping[str, str] = field(default_factory=dict)  # site_id: RED|GREEN


def _order(summary: dict) -> tuple[int, int]:
    return summary["as_of"], summary["n_deltas"]


def site_kris(sites: Mapping[str, dict]) -> dict[str, dict[str, dict]]:
    """site_id: {kri name: result} for every site of a trial."""
    per_kri = {spec.name: kri_results(spec, sites) for spec in KRIS}
    return {s: {name: per_kri[name][s] for name in per_kri} for s in sorted(sites)}


def fold_trial(book: TrialBook | None, summary: dict) -> tuple[TrialBook, list[dict]]:
    """The trial book with ``summary`` as its site's latest, and the SiteAlerts.

    A summary older than the stored one (by as_of, then n_deltas, both growing
    with every fold of the site) is ignored. Any site may change status, since
    the pooled study values move with every site.
    """
    if book is None:
        book = TrialBook(summary["trial_id"])
    elif summary["trial_id"] != book.trial_id:
        raise ValueError(f"summary of trial {summary['trial_id']} for {book.trial_id}")
    stored = book.sites.get(summary["site_id"])
    if stored is not None and _order(summary) < _order(stored):
        return book, []
    sites = {**book.sites, summary["site_id"]: summary}
    kris = site_kris(sites)
    status = {s: status_of([r["flag"] for r in kris[s].values()]) for s in kris}
    last_alert = dict(book.last_alert)
    alerts = []
    for site, now in status.items():
        if _alerts(book.status.get(site), now, last_alert.get(site)):
            alerts.append(_site_alert(book.trial_id, site, now, book.status.get(site),
                                      sites, kris[site], summary))  # fmt: skip
            last_alert[site] = now
    return TrialBook(book.trial_id, sites, status, last_alert), alerts


def _alerts(before: str | None, now: str, last_alert: str | None) -> bool:
    """Turned RED, or back to GREEN with RED as the last alert."""
    if now == "RED":
        return before != "RED"
    return now == "GREEN" and last_alert == "RED"


def _site_alert(
    trial_id: str, site_id: str, status: str, previous: str | None,
    sites: Mapping[str, dict], kris: dict[str, dict], trigger: dict,
) -> dict:  # fmt: skip
    """A SiteAlert record. Its id names the summary that caused it (site and
    n_deltas): re-folding the same summaries gives the same ids."""
    key = f"{trial_id}|{site_id}|{status}|{trigger['site_id']}|{trigger['n_deltas']}"
    return {
        "alert_id": str(uuid.uuid5(SITE_ALERT_NAMESPACE, key)),
        "trial_id": trial_id,
        "site_id": site_id,
        "status": status,
        "previous_status": previous,
        "as_of": max(s["as_of"] for s in sites.values()),
        "kris": [_kri_result(name, r) for name, r in kris.items()],
    }


def _kri_result(name: str, result: dict) -> dict:
    """A KriResult record of a SiteAlert."""
    return {"name": name, **{k: result[k] for k in ("value", "study", "z", "flag")}}


def kri_rows(book: TrialBook) -> list[dict]:
    """One row per site (sorted by site_id) for the dashboard."""
    kris = site_kris(book.sites)
    rows = []
    for site, results in kris.items():
        summary = book.sites[site]
        rows.append({
            "trial_id": book.trial_id,
            "site_id": site,
            "as_of": summary["as_of"],
            "status": status_of([r["flag"] for r in results.values()]),
            "enrolled": summary["enrolled"],
            "active": summary["active"],
            "participant_days": summary["participant_days"],
            "kris": results,
        })  # fmt: skip
    return rows


def trial_to_record(book: TrialBook) -> dict:
    """A TrialBook record (schemas/trial_book.v1.avsc), keys sorted."""
    return {
        "trial_id": book.trial_id,
        "sites": [book.sites[s] for s in sorted(book.sites)],
        "status": dict(sorted(book.status.items())),
        "last_alert": dict(sorted(book.last_alert.items())),
    }


def trial_from_record(record: dict) -> TrialBook:
    return TrialBook(
        trial_id=record["trial_id"],
        sites={s["site_id"]: dict(s) for s in record["sites"]},
        status=dict(record["status"]),
        last_alert=dict(record["last_alert"]),
    )
