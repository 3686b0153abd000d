"""Coordinators' actions on alerts: acknowledged or assigned, as events on a topic.

The ``alert-actions`` topic is the durable, auditable record (who did what to
which alert, when); the dashboard's view of it is a projection the actions
agent folds into Redis (``streams.dashstore``), keyed by action id, so a
re-delivered action shows once.
"""

from __future__ import annotations

import time
import uuid

from trialwatch.streams import runtime
from trialwatch.streams.app import app
from trialwatch.streams.topics import alert_actions_topic

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


async def send_action(alert: dict, action: str, actor: str, assignee: str | None) -> dict:
    """Record an action: returns once the broker acknowledged it (raises ActionError)."""
    record = action_record(alert, action, actor, assignee)
    ack = await alert_actions_topic.send(key=alert["patient_id"].encode(), value=record)
    await ack
    return record


@app.agent(alert_actions_topic)
async def project_alert_actions(stream):
    """Every action into the dashboard's projection (idempotent: keyed by its id)."""
    store = runtime.dashstore()
    async for action in stream:
        await store.record_action(action)
