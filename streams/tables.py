"""Per-patient state: a RocksDB-backed Faust table with a compacted changelog.

The changelog is co-partitioned with the visit-events topic (same partition
count, same key), so a patient's events and state always live on one worker.
"""

from __future__ import annotations

from faust.serializers import codecs

from trialwatch.models.state import PatientState, from_record, to_record
from trialwatch.schemas import codec as avro
from trialwatch.streams.app import app, settings


class PatientStateCodec(codecs.Codec):
    """PatientState <-> Avro single-object bytes (schemas/patient_state.v*.avsc).

    Faust encodes every written value twice in a row (for RocksDB, then for the
    changelog); states are immutable, so the second encoding of the same object
    reuses the first one's bytes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[PatientState, bytes] | None = None

    def _dumps(self, obj: PatientState) -> bytes:
        last = self._last
        if last is not None and last[0] is obj:
            return last[1]
        data = avro.encode(to_record(obj), "PatientState")
        self._last = (obj, data)
        return data

    def _loads(self, s: bytes) -> PatientState:
        return from_record(avro.decode(s, "PatientState"))


codecs.register("patient_state_object", PatientStateCodec())


class PatientStateValue:
    """Tells Faust the table's value codec: it derives a table's serializers (also
    for changelog recovery) from ``value_type._options.serializer``."""

    class _options:
        serializer = "patient_state_object"

    @classmethod
    def from_data(cls, data: PatientState, preferred_type: object = None) -> PatientState:
        return data


patient_to_state = app.Table(
    "patient_to_state",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    value_type=PatientStateValue,
    help="Rolling PatientState per patient id",
)
