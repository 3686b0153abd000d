"""The site-KRI and alert-action records round-trip through the codec."""

from __future__ import annotations

import pytest

from tests.schemas.factories import BASE_TIME
from trialwatch.schemas import codec, registry
from trialwatch.schemas.exceptions import EncodeError

SUMMARY = {
    "trial_id": "T-01", "site_id": "S-07", "as_of": BASE_TIME, "n_deltas": 42,
    "enrolled": 12, "active": 9, "participant_days": 812.5, "window_resolved": 14,
    "window_missed": 3, "early_terminated": 2, "completed": 1, "ae": 7, "sae": 1,
    "contacts": 20, "unreached": 6,
}  # fmt: skip
DELTA = {
    "trial_id": "T-01", "site_id": "S-07", "patient_id": "P-000123", "seq": 3,
    "event_time": BASE_TIME, "kind": "ADVERSE_EVENT", "serious": True, "reached": False,
    "enrolled_at": BASE_TIME - 86_400_000,
}  # fmt: skip
BOOK = {
    "trial_id": "T-01", "site_id": "S-07", "as_of": BASE_TIME, "n_deltas": 42,
    "enrolled": 12, "early_terminated": 2, "completed": 1, "ae": 7, "sae": 1,
    "contacts": 20, "unreached": 6, "active_enrolled_ms": 9 * BASE_TIME, "ended_ms": 10**9,
    "days": [{"day": 19_675, "resolved": 3, "missed": 1},
             {"day": 19_676, "resolved": 1, "missed": 0}],
    "seen": {"P-000123": 3, "P-000124": 11},
}  # fmt: skip
KRI = {"name": "ae_rate", "value": 0.86, "study": 0.5, "z": 3.2, "flag": "red"}
ALERT = {
    "alert_id": "6f1c1d0e-7a51-5f59-9a63-2b1f6a0c9e11", "trial_id": "T-01",
    "site_id": "S-07", "status": "RED", "previous_status": "AMBER", "as_of": BASE_TIME,
    "kris": [KRI, {"name": "missed_visits", "value": None, "study": None, "z": None,
                   "flag": "none"}],
}  # fmt: skip
ACTION = {
    "action_id": "a-1", "alert_id": "al-1", "patient_id": "P-000123", "trial_id": "T-01",
    "site_id": "S-07", "action": "ASSIGNED", "assignee": "nurse-3", "actor": "coord-1",
    "at_wall_ms": BASE_TIME,
}  # fmt: skip
TRIAL = {
    "trial_id": "T-01",
    "sites": [SUMMARY, {**SUMMARY, "site_id": "S-08"}],
    "status": {"S-07": "RED", "S-08": "GREEN"},
    "last_alert": {"S-07": "RED"},
}
RECORDS = [
    ("SiteDelta", DELTA),
    ("SiteDelta", {**DELTA, "kind": "CONTACT_ATTEMPT", "serious": False, "reached": True}),
    ("SiteBook", BOOK),
    ("SiteBook", {**BOOK, "days": [], "seen": {}}),
    ("SiteSummary", SUMMARY),
    ("TrialBook", TRIAL),
    ("TrialBook", {"trial_id": "T-02", "sites": [], "status": {}, "last_alert": {}}),
    ("SiteAlert", ALERT),
    ("SiteAlert", {**ALERT, "status": "GREEN", "previous_status": None, "kris": []}),
    ("AlertAction", ACTION),
    ("AlertAction", {**ACTION, "action": "ACKNOWLEDGED", "assignee": None}),
]


@pytest.mark.parametrize(("name", "record"), RECORDS)
def test_site_records_round_trip(name, record):
    data = codec.encode(record, name)
    assert data[2:10] == registry.current(name).fingerprint
    assert codec.decode(data, name) == record


@pytest.mark.parametrize(
    ("name", "record"),
    [("SiteDelta", {**DELTA, "kind": "EPRO_SUBMITTED"}),  # no delta for ePROs
     ("SiteAlert", {**ALERT, "status": "BLUE"}),
     ("SiteAlert", {**ALERT, "kris": [{**KRI, "flag": "RED"}]}),  # flags are lower case
     ("AlertAction", {**ACTION, "action": "DELETED"}),
     ("SiteBook", {**BOOK, "seen": {"P-1": "three"}})],
)  # fmt: skip
def test_records_outside_their_schema_do_not_encode(name, record):
    with pytest.raises(EncodeError):
        codec.encode(record, name)


def test_the_trial_book_holds_exactly_the_site_summary_record():
    nested = registry.current("TrialBook").source["fields"][1]["type"]["items"]
    assert nested["name"] == "SiteSummary"
    assert nested["fields"] == registry.current("SiteSummary").source["fields"]
