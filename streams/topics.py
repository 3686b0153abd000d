"""Every topic of the worker. Keys are patient ids (UTF-8) on all of them.

The input is consumed as raw bytes, not through a codec: a message that fails
to decode must reach the dead-letter topic byte for byte, with the reason.
"""

from __future__ import annotations

import trialwatch.streams.codecs  # noqa: F401  (registers the Avro codecs by name)
from trialwatch.streams.app import app, settings

visit_events_topic = app.topic(
    settings.visit_events_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
risk_scores_topic = app.topic(
    settings.risk_scores_topic,
    key_serializer="raw",
    value_serializer="risk_score",
    partitions=settings.partitions,
)
risk_alerts_topic = app.topic(
    settings.risk_alerts_topic,
    key_serializer="raw",
    value_serializer="risk_alert",
    partitions=settings.partitions,
)
dead_letter_topic = app.topic(
    settings.dlq_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
model_outcomes_topic = app.topic(
    settings.model_outcomes_topic,
    key_serializer="raw",
    value_serializer="model_outcomes",
    partitions=settings.partitions,
)
model_metrics_topic = app.topic(
    settings.model_metrics_topic,
    key_serializer="raw",
    value_serializer="model_metrics",
    partitions=settings.partitions,
)
shadow_scores_topic = app.topic(
    settings.shadow_scores_topic,
    key_serializer="raw",
    value_serializer="risk_score",
    partitions=settings.partitions,
)
# Site risk indicators (streams.sites): re-keyed by site, then by trial.
site_deltas_topic = app.topic(
    settings.site_deltas_topic,
    key_serializer="raw",
    value_serializer="site_delta",
    partitions=settings.partitions,
)
site_kris_topic = app.topic(
    settings.site_kris_topic,
    key_serializer="raw",
    value_serializer="site_summary",
    partitions=settings.partitions,
)
site_alerts_topic = app.topic(
    settings.site_alerts_topic,
    key_serializer="raw",
    value_serializer="site_alert",
    partitions=settings.partitions,
)
# The coordinator's side (streams.worklist): pages within the budget, and actions.
risk_pages_topic = app.topic(
    settings.risk_pages_topic,
    key_serializer="raw",
    value_serializer="risk_alert",
    partitions=settings.partitions,
)
alert_actions_topic = app.topic(
    settings.alert_actions_topic,
    key_serializer="raw",
    value_serializer="alert_action",
    partitions=settings.partitions,
)
