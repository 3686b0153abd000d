"""Per-patient state: a RocksDB-backed Faust table with a compacted changelog.

The changelog is co-partitioned with the visit-events topic (same partition
count, same key), so a patient's events and state always live on one worker.
"""

from __future__ import annotations

from trialwatch.streams.app import app, settings
from trialwatch.streams.codecs import (
    OutcomeWindowValue,
    PatientStateValue,
    SiteBookValue,
    TrialBookValue,
)

patient_to_state = app.Table(
    "patient_to_state",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=PatientStateValue,
    help="Rolling PatientState per patient id",
)
model_trial_to_outcomes = app.Table(
    "model_trial_to_outcomes",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=OutcomeWindowValue,
    help="Matured-prediction counts per model version|trial (streams.monitoring)",
)
site_to_book = app.Table(
    "site_to_book",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=SiteBookValue,
    help="KRI counters per trial|site (streams.sites), co-partitioned with site-deltas",
)
trial_to_sites = app.Table(
    "trial_to_sites",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=TrialBookValue,
    help="Every site's KRI numbers and status per trial, co-partitioned with site-kris",
)
