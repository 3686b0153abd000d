"""Offline site KRIs (producers.sites) on a small simulated world: the same
books in any per-site-ordered interleaving, under re-delivery and replay."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from trialwatch.models.kri import kri_rows
from trialwatch.models.scorer import Scorer
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.producers.sites import (
    TrialKris,
    fold_deltas,
    offline_kris,
    offline_kris_file,
    site_deltas,
)

WORLD = replace(PROFILES["demo"], seed=3, n_participants=240, n_trials=2, sites_per_trial=5)


@pytest.fixture(scope="module")
def world():
    return simulate(WORLD)


@pytest.fixture(scope="module")
def offline(world) -> dict[str, TrialKris]:
    return offline_kris(world.events)


@pytest.fixture(scope="module")
def deltas(world) -> list[dict]:
    return list(site_deltas(world.events))


def interleaved(deltas: list[dict], seed: int) -> list[dict]:
    """The deltas shuffled across sites, each site's own order kept (what N
    workers may deliver: one site's deltas share a partition)."""
    queues: dict[tuple[str, str], list[dict]] = {}
    for d in deltas:
        queues.setdefault((d["trial_id"], d["site_id"]), []).append(d)
    rng, out, live = random.Random(seed), [], [q for q in queues.values()]
    while live:
        queue = rng.choice(live)
        out.append(queue.pop(0))
        live = [q for q in live if q]
    return out


def same_kris(a: dict[str, TrialKris], b: dict[str, TrialKris]) -> None:
    """Everything that must not depend on the interleaving of sites."""
    assert a.keys() == b.keys()
    for trial_id in a:
        assert a[trial_id].site_books == b[trial_id].site_books
        assert a[trial_id].book.sites == b[trial_id].book.sites
        assert a[trial_id].book.status == b[trial_id].book.status
        assert kri_rows(a[trial_id].book) == kri_rows(b[trial_id].book)


def test_the_books_count_every_participant_of_the_world(world, offline):
    assert sorted(offline) == sorted(t.trial_id for t in world.trials)
    sites = [s for trial in offline.values() for s in trial.book.sites.values()]
    assert len(sites) == 2 * 5
    ends = Counter(world.outcome.values())
    assert sum(s["enrolled"] for s in sites) == WORLD.n_participants
    assert sum(s["early_terminated"] for s in sites) == ends["WITHDRAWN"]
    assert sum(s["completed"] for s in sites) == ends["COMPLETED"]
    kinds = Counter(e["event_type"] for e in world.events)
    assert sum(s["ae"] for s in sites) == kinds["ADVERSE_EVENT"]
    assert sum(s["contacts"] for s in sites) == kinds["CONTACT_ATTEMPT"]
    flags = {k["flag"] for t in offline.values() for r in kri_rows(t.book)
             for k in r["kris"].values()}  # fmt: skip
    assert "green" in flags and "none" in flags


def test_any_per_site_order_gives_the_same_books(offline, deltas):
    for seed in range(3):
        mixed = interleaved(deltas, seed)
        assert mixed != deltas
        same_kris(fold_deltas(mixed), offline)


def test_every_delta_twice_changes_nothing(offline, deltas):
    trials: dict[str, TrialKris] = {}
    refused = 0
    for delta in deltas:
        trial = trials.setdefault(delta["trial_id"], TrialKris(delta["trial_id"]))
        assert trial.fold(delta)
        refused += not trial.fold(delta)
    assert refused == len(deltas)
    same_kris(trials, offline)
    for trial_id, trial in trials.items():  # a single ordered stream: same path too
        assert trial.alerts == offline[trial_id].alerts
        assert trial.book == offline[trial_id].book


def test_a_replayed_history_changes_nothing(world, offline):
    replayed = offline_kris([*world.events, *world.events])
    same_kris(replayed, offline)


def test_the_event_file_gives_the_same_kris(world, offline, tmp_path):
    path = tmp_path / "events.jsonl"
    write_jsonl(world.events, path)
    with open(path, "a") as out:
        out.write("{not json\n")  # a bad line is skipped, as the worker dead-letters it
    same_kris(offline_kris_file(path), offline)


def test_through_the_worker_s_step_the_kris_are_the_same(world, offline, quick_model_dir):
    scored = offline_kris(world.events, scorer=Scorer.load(quick_model_dir))
    same_kris(scored, offline)
    for trial_id, trial in scored.items():
        assert trial.alerts == offline[trial_id].alerts
