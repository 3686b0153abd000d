"""Site KRIs against hand-computed values: rates, windows, z-scores, flags,
idempotence and alert transitions (models.kri)."""

from __future__ import annotations

import math
import random
import uuid

import pytest

from tests.models.factories import DAY, T0
from trialwatch.models import kri
from trialwatch.models.state import Outcome, apply
from trialwatch.schemas import codec
from trialwatch.schemas.contract import normalize_event

T0_DAY = T0 // DAY  # T0 is midnight UTC: day T0_DAY starts at T0


def event(patient: str, n: int, kind: str, days: float, **fields) -> dict:
    return normalize_event({
        "event_id": f"{patient}-{n:03d}", "patient_id": patient, "trial_id": "T1",
        "site_id": "S1", "event_type": kind, "event_time": T0 + int(days * DAY), **fields,
    })  # fmt: skip


def enrolled(patient: str, days: float) -> dict:
    return event(patient, 0, "ENROLLED", days, age=50, sex="F", arm="ACTIVE", phase="II",
                 distance_km=5.0, planned_visits=10, visit_interval_days=21)  # fmt: skip


def visit(patient: str, n: int, days: float, missed: bool = False) -> dict:
    kind = "VISIT_MISSED" if missed else "VISIT_COMPLETED"
    return event(patient, n, kind, days, visit_number=n, scheduled_time=T0 + int(days * DAY))


def deltas_of(events: list[dict]) -> list[dict]:
    """Each applied event's delta, the way the scoring agent makes them."""
    states, out = {}, []
    for e in events:
        state, outcome = apply(states.get(e["patient_id"]), e)
        states[e["patient_id"]] = state
        delta = kri.site_delta(state, e) if outcome is Outcome.APPLIED else None
        if delta is not None:
            out.append(delta)
    return out


def fold_all(deltas: list[dict], book: kri.SiteBook | None = None) -> kri.SiteBook | None:
    for delta in deltas:
        book = kri.fold_site(book, delta) or book
    return book


# A small site: four participants, as_of = day 60.
#   P1 enrols day 0,  visit done day 5, missed day 35, AE day 12, reached day 36
#   P2 enrols day 10, missed day 40, SAE day 30, unreached days 41 and 42,
#      withdraws day 44
#   P3 enrols day 20, visit done day 45, AE day 40, ePRO day 50 (no delta)
#   P4 enrols day 20, visit done day 50, reached day 51, completes day 60
SMALL_SITE = [
    enrolled("P1", 0), enrolled("P2", 10), enrolled("P3", 20), enrolled("P4", 20),
    visit("P1", 1, 5), event("P1", 2, "ADVERSE_EVENT", 12, ae_grade=1, serious=False),
    event("P2", 1, "ADVERSE_EVENT", 30, ae_grade=3, serious=True),
    visit("P1", 3, 35, missed=True), event("P1", 4, "CONTACT_ATTEMPT", 36, reached=True),
    visit("P2", 2, 40, missed=True),
    event("P3", 1, "ADVERSE_EVENT", 40, ae_grade=2, serious=False),
    event("P2", 3, "CONTACT_ATTEMPT", 41, reached=False),
    event("P2", 4, "CONTACT_ATTEMPT", 42, reached=False),
    event("P2", 5, "WITHDRAWN", 44, reason="moved"),
    visit("P3", 2, 45), event("P3", 3, "EPRO_SUBMITTED", 50, epro_score=60.0),
    visit("P4", 1, 50), event("P4", 2, "CONTACT_ATTEMPT", 51, reached=True),
    event("P4", 3, "COMPLETED", 60),
]  # fmt: skip


def test_a_delta_carries_the_site_and_the_participant_s_applied_count():
    state, _ = apply(None, enrolled("P1", 0))
    ae = event("P1", 1, "ADVERSE_EVENT", 3, ae_grade=3, serious=True)
    state, _ = apply(state, ae)
    assert kri.site_delta(state, ae) == {
        "trial_id": "T1", "site_id": "S1", "patient_id": "P1", "seq": 2,
        "event_time": T0 + 3 * DAY, "kind": "ADVERSE_EVENT", "serious": True,
        "reached": False, "enrolled_at": T0,
    }  # fmt: skip
    epro = event("P1", 2, "EPRO_SUBMITTED", 4, epro_score=50.0)
    state, _ = apply(state, epro)
    assert kri.site_delta(state, epro) is None  # no site number changes
    contact = event("P1", 3, "CONTACT_ATTEMPT", 5, reached=True)
    state, _ = apply(state, contact)
    delta = kri.site_delta(state, contact)
    assert (delta["seq"], delta["reached"], delta["serious"]) == (4, True, False)


def test_a_small_site_by_hand():
    book = fold_all(deltas_of(SMALL_SITE))
    summary = kri.site_summary(book)
    # Window: as_of is day 60, so days 31..60 count (60 - 30 < day <= 60). The
    # visit of day 5 is out; days 35 (missed), 40 (missed), 45, 50 are in:
    # 4 resolved, 2 missed.
    # Participant-days: P1 60 - 0 = 60, P2 44 - 10 = 34 (withdrawn day 44),
    # P3 60 - 20 = 40, P4 60 - 20 = 40 (completed day 60): 174.
    assert summary == {
        "trial_id": "T1", "site_id": "S1", "as_of": T0 + 60 * DAY,
        "n_deltas": 18,  # 19 events, one ePRO without a delta
        "enrolled": 4, "active": 2, "participant_days": 174.0,
        "window_resolved": 4, "window_missed": 2,
        "early_terminated": 1, "completed": 1,
        "ae": 3, "sae": 1, "contacts": 4, "unreached": 2,
    }  # fmt: skip
    values = {name: r["value"] for name, r in kri.site_kris({"S1": summary})["S1"].items()}
    assert values["missed_visits"] == 50.0  # 2 / 4
    assert values["early_termination"] == 25.0  # 1 withdrawn / 4 enrolled
    assert values["ae_rate"] == pytest.approx(1.724137931)  # 3 / 174 * 100
    assert values["sae_rate"] == pytest.approx(0.574712644)  # 1 / 174 * 100
    assert values["unreached_contacts"] == 50.0  # 2 / 4


def test_funnel_z_by_hand():
    # proportion: (30/100 - 0.2) / sqrt(0.2 * 0.8 / 100) = 0.1 / 0.04 = 2.5
    assert kri.funnel_z_proportion(30, 100, 0.2) == pytest.approx(2.5)
    # over-dispersed by phi = 1.5625: the sd grows by sqrt(1.5625) = 1.25 -> 2.0
    assert kri.funnel_z_proportion(30, 100, 0.2, phi=1.5625) == pytest.approx(2.0)
    # rate: (8/100 - 0.04) / sqrt(0.04 / 100) = 0.04 / 0.02 = 2.0; none: -2.0
    assert kri.funnel_z_rate(8, 100, 0.04) == pytest.approx(2.0)
    assert kri.funnel_z_rate(0, 100, 0.04) == pytest.approx(-2.0)
    # the unit of exposure does not matter: days or 100 days give the same z
    assert kri.funnel_z_rate(8, 1, 4.0) == pytest.approx(2.0)
    # a pooled value of 0 (or 1) means every site is alike: z = 0, as in gsm
    assert kri.funnel_z_proportion(0, 10, 0.0) == 0.0
    assert kri.funnel_z_proportion(10, 10, 1.0) == 0.0
    assert kri.funnel_z_rate(0, 10, 0.0) == 0.0
    with pytest.raises(ValueError):
        kri.funnel_z_proportion(0, 0, 0.5)


@pytest.mark.parametrize(
    ("z", "expected"),
    [(0.0, "green"), (1.999, "green"), (2.0, "amber"), (-2.0, "amber"), (2.999, "amber"),
     (-2.999, "amber"), (3.0, "red"), (-3.0, "red"), (-7.5, "red"), (None, "none")],
)  # fmt: skip
def test_flag_thresholds_in_both_directions(z, expected):
    assert kri.flag(z, denominator=10, min_denominator=10) == expected


def test_a_denominator_below_the_minimum_flags_none():
    assert kri.flag(9.0, denominator=9, min_denominator=10) == "none"
    assert kri.flag(9.0, denominator=9.99, min_denominator=10) == "none"
    assert kri.flag(9.0, denominator=10, min_denominator=10) == "red"


def test_a_z_of_two_by_hand_is_amber_despite_float_rounding():
    # (60/100 - 0.5) / sqrt(0.25 / 100) = 0.1 / 0.05 = 2, but in floats 0.6 - 0.5
    # is 0.0999..., so z is 1.9999999999999996: rounded, it flags as written.
    z = kri.funnel_z_proportion(60, 100, 0.5)
    assert z < 2.0
    assert kri.flag(z, 100, 10) == "amber"


def test_overdispersion_is_gsm_s_mean_squared_z_with_the_guards():
    assert kri.overdispersion([4.0] * 9) == 1.0  # 9 sites: too few to estimate
    # 10 sites: (4*2^2 + 6*0^2) / 10 = 1.6
    assert kri.overdispersion([2.0, -2.0, 2.0, -2.0] + [0.0] * 6) == pytest.approx(1.6)
    assert kri.overdispersion([0.5] * 12) == 1.0  # under-dispersed: never below 1


def summary_of(site: str, **counts) -> dict:
    base = {
        "trial_id": "T1", "site_id": site, "as_of": T0, "n_deltas": 1, "enrolled": 0,
        "active": 0, "participant_days": 0.0, "window_resolved": 0, "window_missed": 0,
        "early_terminated": 0, "completed": 0, "ae": 0, "sae": 0, "contacts": 0,
        "unreached": 0,
    }  # fmt: skip
    return {**base, **counts}


def unreached(**sites: tuple[int, int]) -> dict[str, dict]:
    """site: (unreached, contacts)."""
    return {s: summary_of(s, unreached=u, contacts=n) for s, (u, n) in sites.items()}


def results(spec_name: str, sites: dict[str, dict]) -> dict[str, dict]:
    spec = next(s for s in kri.KRIS if s.name == spec_name)
    return kri.kri_results(spec, sites)


def test_site_against_the_pooled_trial_by_hand():
    r = results("unreached_contacts", unreached(A=(12, 20), B=(2, 20), C=(6, 20)))
    # pooled 20/60 = 1/3; sd = sqrt(1/3 * 2/3 / 20) = sqrt(1/90) = 0.105409
    # A: (0.6 - 1/3) / 0.105409 = 2.5298 amber (high)
    # B: (0.1 - 1/3) / 0.105409 = -2.2136 amber (low)
    # C: (0.3 - 1/3) / 0.105409 = -0.3162 green; 3 sites: phi = 1
    assert r["A"]["study"] == pytest.approx(100 / 3)
    assert r["A"]["value"] == pytest.approx(60.0)
    assert [round(r[s]["z"], 4) for s in "ABC"] == [2.5298, -2.2136, -0.3162]
    assert [r[s]["flag"] for s in "ABC"] == ["amber", "amber", "green"]


def test_a_low_ae_rate_is_flagged_as_possible_under_reporting():
    sites = {s: summary_of(s, ae=n, participant_days=1000.0)
             for s, n in (("A", 0), ("B", 30), ("C", 30))}  # fmt: skip
    r = results("ae_rate", sites)
    # r0 = 60 / 3000 = 0.02 per day; sd = sqrt(0.02 / 1000) = 0.0044721
    # A: (0 - 0.02) / 0.0044721 = -4.4721 red; B: 0.01 / 0.0044721 = 2.2361 amber
    assert r["A"]["study"] == pytest.approx(2.0)  # per 100 participant-days
    assert r["A"]["z"] == pytest.approx(-math.sqrt(20))
    assert r["B"]["z"] == pytest.approx(math.sqrt(5))
    assert [r[s]["flag"] for s in "ABC"] == ["red", "amber", "amber"]


def test_a_small_site_is_pooled_but_not_judged():
    r = results("unreached_contacts", unreached(A=(6, 20), B=(6, 20), C=(5, 5)))
    # pooled 17/45; C's z is (1 - 17/45) / sqrt(17/45 * 28/45 / 5) = 2.8697,
    # but 5 attempts are below the minimum of 10: no flag
    assert r["C"]["study"] == pytest.approx(1700 / 45)
    assert r["C"]["z"] == pytest.approx(2.8697, abs=1e-4)
    assert r["C"]["flag"] == "none"
    none = results("unreached_contacts", unreached(A=(0, 0), B=(3, 20)))
    assert none["A"] == {"value": None, "study": 15.0, "z": None, "flag": "none",
                         "numerator": 0, "denominator": 0}  # fmt: skip


def test_overdispersion_widens_the_limits_of_a_large_trial():
    # 12 sites, contacts 100 each; unreached 10 at six sites and 30 at six:
    # pooled 0.2, sd0 = sqrt(0.2 * 0.8 / 100) = 0.04, z0 = -2.5 or +2.5, so
    # phi = 6.25 and z = z0 / sqrt(6.25) = +-1.0: every site green, where the
    # plain binomial funnel (phi = 1) would flag all twelve amber.
    sites = unreached(**{f"L{i}": (10, 100) for i in range(6)},
                      **{f"H{i}": (30, 100) for i in range(6)})  # fmt: skip
    r = results("unreached_contacts", sites)
    assert {round(x["z"], 6) for x in r.values()} == {-1.0, 1.0}
    assert {x["flag"] for x in r.values()} == {"green"}
    assert kri.flag(kri.funnel_z_proportion(30, 100, 0.2), 100, 10) == "amber"


def test_one_outlier_among_five_sites_can_be_red():
    # gsm's plain phi over 5 sites would cap |z| at sqrt(5) = 2.24; with phi = 1
    # (fewer than 10 sites) A: pooled 42/100, sd = sqrt(0.42 * 0.58 / 20) =
    # 0.110363, z = (0.9 - 0.42) / 0.110363 = 4.3493 red
    r = results("unreached_contacts",
                unreached(A=(18, 20), B=(6, 20), C=(6, 20), D=(6, 20), E=(6, 20)))  # fmt: skip
    assert r["A"]["z"] == pytest.approx(4.3493, abs=1e-4)
    assert r["A"]["flag"] == "red"


def visit_delta(patient: str, seq: int, days: float, missed: bool) -> dict:
    kind = "VISIT_MISSED" if missed else "VISIT_COMPLETED"
    return {"trial_id": "T1", "site_id": "S1", "patient_id": patient, "seq": seq,
            "event_time": T0 + int(days * DAY), "kind": kind, "serious": False,
            "reached": False, "enrolled_at": T0}  # fmt: skip


def window(book: kri.SiteBook) -> tuple[int, int]:
    summary = kri.site_summary(book)
    return summary["window_resolved"], summary["window_missed"]


def test_the_window_drops_old_days_by_event_time():
    book = fold_all([visit_delta("P1", 1, 0, missed=True), visit_delta("P2", 1, 1, True)])
    assert window(book) == (2, 2)
    # as_of day 30: days 1..30 count (30 - 30 < day): day 0 leaves, day 1 stays
    book = fold_all([visit_delta("P3", 1, 30.5, missed=False)], book)
    assert window(book) == (2, 1)
    assert sorted(book.days) == [T0_DAY + 1, T0_DAY + 30]  # day 0 is no longer kept
    # the next event-time day pushes day 1 out too; nothing reads the wall clock
    book = fold_all([visit_delta("P3", 2, 31, missed=False)], book)
    assert window(book) == (2, 0)


def test_late_visits_count_when_inside_the_window_whatever_the_arrival_order():
    on_time = [visit_delta("P1", 1, 10, True), visit_delta("P2", 1, 40, False),
               visit_delta("P3", 1, 25, True), visit_delta("P4", 1, 5, True)]  # fmt: skip
    # day 25 is inside the window of as_of day 40 (days 11..40); days 5, 10 are not
    assert window(fold_all(on_time)) == (2, 1)
    books = set()
    for seed in range(6):
        shuffled = random.Random(seed).sample(on_time, len(on_time))
        books.add(repr(kri.book_to_record(fold_all(shuffled))))
    assert len(books) == 1


def test_a_re_delivered_delta_is_refused():
    deltas = deltas_of(SMALL_SITE)
    book = fold_all(deltas)
    assert all(kri.fold_site(book, d) is None for d in deltas)
    # interleaved re-delivery: each delta twice in a row gives the same book
    twice = fold_all([d for d in deltas for _ in range(2)])
    assert twice == book


def test_a_replayed_history_changes_nothing():
    book = fold_all(deltas_of(SMALL_SITE))
    # the state table lost, the history replayed from the start: the same seqs
    assert fold_all(deltas_of(SMALL_SITE), book) == book
    assert all(kri.fold_site(book, d) is None for d in deltas_of(SMALL_SITE))
    # the state kept: apply calls every replayed event a duplicate, no deltas
    states = {}
    for e in SMALL_SITE:
        states[e["patient_id"]] = apply(states.get(e["patient_id"]), e)[0]
    outcomes = {apply(states[e["patient_id"]], e)[1] for e in SMALL_SITE}
    assert outcomes == {Outcome.DUPLICATE}


def test_participants_in_any_interleaving_give_the_same_book():
    deltas = deltas_of(SMALL_SITE)
    by_patient: dict[str, list[dict]] = {}
    for d in deltas:
        by_patient.setdefault(d["patient_id"], []).append(d)
    expected = fold_all(deltas)
    for seed in range(10):
        queues = [list(q) for q in by_patient.values()]
        rng, mixed = random.Random(seed), []
        while any(queues):
            mixed.append(rng.choice([q for q in queues if q]).pop(0))
        assert fold_all(mixed) == expected


def test_site_book_and_trial_book_records_round_trip():
    book = fold_all(deltas_of(SMALL_SITE))
    data = codec.encode(kri.book_to_record(book), "SiteBook")
    assert kri.book_from_record(codec.decode(data, "SiteBook")) == book
    summary = kri.site_summary(book)
    assert codec.decode(codec.encode(summary, "SiteSummary"), "SiteSummary") == summary
    trial, _ = kri.fold_trial(None, summary)
    data = codec.encode(kri.trial_to_record(trial), "TrialBook")
    assert kri.trial_from_record(codec.decode(data, "TrialBook")) == trial
    for delta in deltas_of(SMALL_SITE):
        assert codec.decode(codec.encode(delta, "SiteDelta"), "SiteDelta") == delta


def test_equal_books_encode_to_equal_bytes():
    deltas = deltas_of(SMALL_SITE)
    forward, backward = fold_all(deltas), fold_all(deltas_of(SMALL_SITE[:4]))
    backward = fold_all(sorted(deltas[4:], key=lambda d: d["patient_id"], reverse=True), backward)
    assert forward == backward and list(forward.days) != list(backward.days)
    encode = [codec.encode(kri.book_to_record(b), "SiteBook") for b in (forward, backward)]
    assert encode[0] == encode[1]


# ---------------------------------------------------------------- trial book


def contacts(site: str, bad: int, n_deltas: int) -> dict:
    return summary_of(site, unreached=bad, contacts=20, n_deltas=n_deltas,
                      as_of=T0 + n_deltas * DAY)  # fmt: skip


def fold_summaries(summaries: list[dict]) -> tuple[kri.TrialBook, list[list[dict]]]:
    book, alerts = None, []
    for summary in summaries:
        book, fired = kri.fold_trial(book, summary)
        alerts.append(fired)
    return book, alerts


def test_the_same_summary_again_changes_nothing():
    book, _ = fold_summaries([contacts("B", 6, 1), contacts("C", 6, 1), contacts("A", 18, 2)])
    assert book.status["A"] == "RED"
    again, alerts = kri.fold_trial(book, contacts("A", 18, 2))
    assert again == book and alerts == []
    older, alerts = kri.fold_trial(book, contacts("A", 6, 1))  # stale: ignored
    assert older == book and alerts == []


def test_alerts_fire_only_on_transitions():
    # B, C: 6/20 unreached. A's share moves; z by hand with the pooled trial:
    #   18/20: pooled 30/60 = 0.5, sd = sqrt(0.25 / 20) = 0.1118, z = 3.578 RED
    #   19/20: z = (0.95 - 31/60) / sqrt(31/60 * 29/60 / 20) = 3.878 RED
    #   15/20: pooled 27/60 = 0.45, sd = 0.111243, z = 2.697 AMBER
    #    6/20: every site 0.3, z = 0 GREEN
    steps = [contacts("B", 6, 1), contacts("C", 6, 1), contacts("A", 6, 1),
             contacts("A", 18, 2), contacts("A", 18, 2), contacts("A", 19, 3),
             contacts("A", 15, 4), contacts("A", 6, 5), contacts("A", 15, 6),
             contacts("A", 6, 7)]  # fmt: skip
    book, alerts = fold_summaries(steps)
    statuses = []
    for i in range(len(steps)):
        statuses.append(fold_summaries(steps[: i + 1])[0].status["A"] if i >= 2 else None)
    assert statuses[2:] == ["GREEN", "RED", "RED", "RED", "AMBER", "GREEN", "AMBER", "GREEN"]
    fired = [[(a["site_id"], a["status"], a["previous_status"]) for a in f] for f in alerts]
    assert fired == [[], [], [], [("A", "RED", "GREEN")], [], [], [],
                     [("A", "GREEN", "AMBER")], [], []]  # fmt: skip
    assert book.last_alert == {"A": "GREEN"}


def test_a_site_alert_has_a_deterministic_id_and_its_kris():
    steps = [contacts("B", 6, 1), contacts("C", 6, 1), contacts("A", 18, 2)]
    _, first = fold_summaries(steps)
    _, again = fold_summaries(steps)
    (alert,) = first[2]
    assert alert == again[2][0]
    assert uuid.UUID(alert["alert_id"]).version == 5
    assert alert["as_of"] == T0 + 2 * DAY  # the trial's newest event time
    by_name = {k["name"]: k for k in alert["kris"]}
    assert by_name["unreached_contacts"]["flag"] == "red"
    assert by_name["unreached_contacts"]["z"] == pytest.approx(0.4 / math.sqrt(0.25 / 20))
    assert codec.decode(codec.encode(alert, "SiteAlert"), "SiteAlert") == alert
    # a later RED of the same site (after GREEN) is another alert, another id
    later = [*steps, contacts("A", 6, 3), contacts("A", 18, 4)]
    _, fired = fold_summaries(later)
    assert fired[4][0]["status"] == "RED" and fired[4][0]["alert_id"] != alert["alert_id"]


def test_another_site_s_summary_can_change_a_site_s_status():
    # A is RED against B and C at 6/20. B reports 18/20: pooled 42/60 = 0.7,
    # sd = sqrt(0.21 / 20) = 0.10247; A: 0.2 / 0.10247 = 1.95 GREEN again, and
    # C: -0.4 / 0.10247 = -3.90 RED (low). C reports 18/20: all alike, GREEN.
    book, alerts = fold_summaries([contacts("B", 6, 1), contacts("C", 6, 1),
                                   contacts("A", 18, 2), contacts("B", 18, 2),
                                   contacts("C", 18, 2)])  # fmt: skip
    assert book.status == {"A": "GREEN", "B": "GREEN", "C": "GREEN"}
    fired = [[(a["site_id"], a["status"]) for a in f] for f in alerts]
    assert fired[2:] == [[("A", "RED")], [("A", "GREEN"), ("C", "RED")], [("C", "GREEN")]]


def test_kri_rows_one_per_site_with_every_kri():
    book, _ = fold_summaries([contacts("B", 6, 1), contacts("A", 18, 2), contacts("C", 6, 1)])
    rows = kri.kri_rows(book)
    assert [r["site_id"] for r in rows] == ["A", "B", "C"]
    assert [r["status"] for r in rows] == ["RED", "GREEN", "GREEN"]
    assert all(set(r["kris"]) == {s.name for s in kri.KRIS} for r in rows)
    assert rows[0]["kris"]["unreached_contacts"]["value"] == 90.0
    assert rows[0]["kris"]["ae_rate"] == {"value": None, "study": None, "z": None,
                                          "flag": "none", "numerator": 0,
                                          "denominator": 0.0}  # fmt: skip
