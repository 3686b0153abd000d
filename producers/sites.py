"""Site KRIs offline: the stream's three folds over an event file, with no Kafka.

The worker computes site KRIs in three agents (``models.kri``): the scoring
agent turns each applied event into a site delta, a site agent folds deltas
into a SiteBook, and a trial agent folds each changed book's summary into a
TrialBook. This module runs the same functions in one loop, events in file
order (per-participant arrival order, as ``producers.backfill`` does), so
"the KRIs from the stream equal the KRIs from the same events offline" is a
check anyone can run.

What is equal whatever the interleaving of sites: every SiteBook, and a
TrialBook's ``sites`` and ``status`` (hence ``kri_rows``). The SiteAlerts and
``TrialBook.last_alert`` record a PATH of statuses, which depends on the order
sites' summaries reached the trial: with N workers that order is not the
file's, so compare those only on a single ordered stream.

Without a scorer the events go through ``models.state.apply``, the first
thing ``models.pipeline.step`` does; the fields a delta reads (ids,
``n_applied``, ``enrolled_at``) are apply's alone, so the deltas are the
same and no model is loaded. With a scorer, through ``step`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.exceptions import ModelError
from trialwatch.models.kri import (
    SiteBook,
    TrialBook,
    fold_site,
    fold_trial,
    site_delta,
    site_summary,
)
from trialwatch.models.pipeline import DEFAULT_POLICY, step
from trialwatch.models.state import Outcome, PatientState, apply
from trialwatch.producers.files import read_events


@dataclass
class TrialKris:
    """One trial's site books, its TrialBook, and the SiteAlerts in fold order."""

    trial_id: str
    site_books: dict[str, SiteBook] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    book: TrialBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = TrialBook(self.trial_id)

    def fold(self, delta: dict) -> bool:
        """Fold one delta as the site and trial agents do; False: already applied."""
        site_id = delta["site_id"]
        site_book = fold_site(self.site_books.get(site_id), delta)
        if site_book is None:
            return False
        self.site_books[site_id] = site_book
        self.book, alerts = fold_trial(self.book, site_summary(site_book))
        self.alerts.extend(alerts)
        return True


def _advance(
    state: PatientState | None, event: dict, scorer: Any, policy: AlertPolicy
) -> tuple[PatientState, bool]:
    """The participant's next state, and whether the worker would send a delta
    (an applied event, or a replayed duplicate: the stream's rule)."""
    if scorer is None:
        new_state, outcome = apply(state, event)
        return new_state, outcome is Outcome.APPLIED
    result = step(state, event, scorer, policy)
    return result.state, result.outcome is Outcome.APPLIED or result.replayed


def site_deltas(
    events: Iterable[dict], scorer: Any = None, policy: AlertPolicy = DEFAULT_POLICY
) -> Iterator[dict]:
    """The site deltas of ``events``, in order. An event the state refuses
    (the worker dead-letters it) changes no site number and is skipped."""
    states: dict[str, PatientState] = {}
    for event in events:
        patient_id = event["patient_id"]
        try:
            state, sends = _advance(states.get(patient_id), event, scorer, policy)
        except ModelError:
            continue
        states[patient_id] = state
        delta = site_delta(state, event) if sends else None
        if delta is not None:
            yield delta


def fold_deltas(deltas: Iterable[dict]) -> dict[str, TrialKris]:
    """trial_id: its TrialKris after folding ``deltas`` in order."""
    trials: dict[str, TrialKris] = {}
    for delta in deltas:
        trial_id = delta["trial_id"]
        trials.setdefault(trial_id, TrialKris(trial_id)).fold(delta)
    return trials


def offline_kris(
    events: Iterable[dict], scorer: Any = None, policy: AlertPolicy = DEFAULT_POLICY
) -> dict[str, TrialKris]:
    """Per trial: the site books, the TrialBook and the SiteAlerts of ``events``."""
    return fold_deltas(site_deltas(events, scorer, policy))


def offline_kris_file(
    path: Path, scorer: Any = None, policy: AlertPolicy = DEFAULT_POLICY
) -> dict[str, TrialKris]:
    """``offline_kris`` of an event file (JSON lines or Avro); records that
    break the contract are skipped, as the worker dead-letters them."""
    events = (record.event for record in read_events(path) if record.error is None)
    return offline_kris((e for e in events if e is not None), scorer, policy)
