"""Coordinator actions: what the dashboard accepts and the record it sends."""

from __future__ import annotations

import pytest

from trialwatch.schemas import codec as avro
from trialwatch.streams.actions import ActionError, action_record

ALERT = {"alert_id": "a1", "patient_id": "P-1", "trial_id": "T1", "site_id": "S1"}


def test_an_acknowledgement_is_an_avro_alert_action():
    record = action_record(ALERT, "ACKNOWLEDGED", "coordinator", None)
    assert {k: record[k] for k in ALERT} == ALERT
    assert record["action"] == "ACKNOWLEDGED" and record["assignee"] is None
    assert avro.decode(avro.encode(record, "AlertAction"), "AlertAction") == record


def test_assigning_needs_an_assignee():
    with pytest.raises(ActionError, match="needs an assignee"):
        action_record(ALERT, "ASSIGNED", "coordinator", "  ")
    assert action_record(ALERT, "ASSIGNED", "coordinator", " Dr. Lee ")["assignee"] == "Dr. Lee"


def test_unknown_actions_and_long_names_are_refused():
    with pytest.raises(ActionError, match="one of ACKNOWLEDGED, ASSIGNED"):
        action_record(ALERT, "DELETED", "coordinator", None)
    with pytest.raises(ActionError, match="longer than 64"):
        action_record(ALERT, "ASSIGNED", "coordinator", "x" * 65)


def test_two_actions_on_one_alert_have_distinct_ids():
    first = action_record(ALERT, "ACKNOWLEDGED", "a", None)
    second = action_record(ALERT, "ACKNOWLEDGED", "a", None)
    assert first["action_id"] != second["action_id"]
