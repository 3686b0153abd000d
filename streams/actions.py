"""Coordinators' actions on alerts: acknowledged or assigned, as events on a topic.

The ``alert-actions`` topic is the durable, auditable record (who did what to
which alert, when); ``streams.worklist`` sends them and folds them into the
dashboard's projection (``streams.dashstore``), keyed by action id, so a
re-delivered action shows once. This module is the record, without Faust.
"""

from __future__ import annotations

import time
import uuid

ACTIONS = ("ACKNOWLEDGED", "ASSIGNED")
MAX_NAME = 64


class ActionError(ValueError):
    """An action the dashboard refuses, with the reason a person can act on."""


def action_record(alert: dict, action: str, actor: str, assignee: str | None) -> dict:
    """The AlertAction record of one coordinator action (``schemas/alert_action``)."""
    if action not in ACTIONS:
        raise ActionError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    assignee = (assignee or "").strip() or None
    if action == "ASSIGNED" and assignee is None:
        raise ActionError("assigning an alert needs an assignee")
    for what, name in (("actor", actor), ("assignee", assignee or "")):
        if len(name) > MAX_NAME:
            raise ActionError(f"{what} is longer than {MAX_NAME} characters")
    return {
        "action_id": str(uuid.uuid4()),
        "alert_id": alert["alert_id"],
        "patient_id": alert["patient_id"],
        "trial_id": alert["trial_id"],
        "site_id": alert["site_id"],
        "action": action,
        "assignee": assignee,
        "actor": actor,
        # A person's action happens at a wall time: it is shown, never computed on.
        "at_wall_ms": int(time.time() * 1000),
    }
