"""Per-patient state: a RocksDB-backed Faust table with a compacted changelog.

The changelog is co-partitioned with the visit-events topic (same partition
count, same key), so a patient's events and state always live on one worker.
"""

from __future__ import annotations

import faust
from faust.serializers import codecs

from models.state import PatientState, from_record, to_record
from schemas import codec as avro
from streams.app import app, settings


class PatientStateCodec(codecs.Codec):
    """PatientState <-> Avro single-object bytes (schemas/patient_state.v*.avsc)."""

    def _dumps(self, obj: PatientState) -> bytes:
        return avro.encode(to_record(obj), "PatientState")

    def _loads(self, s: bytes) -> PatientState:
        return from_record(avro.decode(s, "PatientState"))


codecs.register("patient_state_object", PatientStateCodec())

patient_to_state = app.Table(
    "patient_to_state",
    default=None,
    partitions=settings.partitions,
    schema=faust.Schema(key_serializer="raw", value_serializer="patient_state_object"),
    help="Rolling PatientState per patient id",
)
# Faust derives a table's serializers from key_type/value_type (JSON by default);
# ours are codecs, so set them before the store and changelog are first used.
patient_to_state.key_serializer = "raw"
patient_to_state.value_serializer = "patient_state_object"
