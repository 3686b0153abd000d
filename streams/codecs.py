"""Faust codecs over the Avro codec of ``schemas``: the only place Faust meets a byte layout.

Topics declare ``value_serializer="risk_score"`` (and so on) by these names; the
table's values are PatientState objects through ``PatientStateValue``.
"""

from __future__ import annotations

from faust.serializers import codecs

from trialwatch.models import kri
from trialwatch.models.monitoring import OutcomeWindow
from trialwatch.models.state import PatientState, decode_state, encode_state
from trialwatch.schemas import codec as avro
from trialwatch.schemas import registry

NAMES = {
    "visit_event": "VisitEvent",
    "risk_score": "RiskScore",
    "risk_alert": "RiskAlert",
    "patient_state": "PatientState",
    "model_outcomes": "ModelOutcomes",
    "model_metrics": "ModelMetrics",
    "model_control": "ModelControl",
    "site_delta": "SiteDelta",
    "site_summary": "SiteSummary",
    "site_alert": "SiteAlert",
    "alert_action": "AlertAction",
}


class AvroSingleObject(codecs.Codec):
    """dict <-> Avro single-object bytes of one record name."""

    def __init__(self, record_name: str, **kwargs) -> None:
        self.record_name = record_name
        super().__init__(record_name=record_name, **kwargs)

    def _dumps(self, obj: dict) -> bytes:
        return avro.encode(obj, self.record_name)

    def _loads(self, s: bytes) -> dict:
        return avro.decode(s, self.record_name)


for _codec_name, _record_name in NAMES.items():
    if _record_name in registry.BY_NAME:
        codecs.register(_codec_name, AvroSingleObject(_record_name))


class PatientStateCodec(codecs.Codec):
    """PatientState <-> Avro single-object bytes (schemas/patient_state.v*.avsc):
    written in the packed v3 layout (schemas.state_layout), v1/v2 values still read.

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
        data = encode_state(obj)
        self._last = (obj, data)
        return data

    def _loads(self, s: bytes) -> PatientState:
        return decode_state(s)


codecs.register("patient_state_object", PatientStateCodec())


class TableValue:
    """A table's value type: tells Faust the value codec (it derives a table's
    serializers, also for changelog recovery, from ``value_type._options.serializer``);
    a subclass names its codec. Values are the codec's objects, passed as they are."""

    class _options:
        serializer = "raw"

    @classmethod
    def from_data(cls, data: object, preferred_type: object = None) -> object:
        return data


class PatientStateValue(TableValue):
    """The patient table's value type."""

    class _options:
        serializer = "patient_state_object"


class OutcomeWindowCodec(codecs.Codec):
    """OutcomeWindow <-> Avro single-object bytes (schemas/outcome_window.v*.avsc).

    Like ``PatientStateCodec``, the second encoding of one write (store, then
    changelog) reuses the first; windows change in place, so the cache is keyed
    by the object and its revision (``OutcomeWindow.revision``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[OutcomeWindow, int, bytes] | None = None

    def _dumps(self, obj: OutcomeWindow) -> bytes:
        last = self._last
        if last is not None and last[0] is obj and last[1] == obj.revision:
            return last[2]
        data = avro.encode(obj.to_record(), "OutcomeWindow")
        self._last = (obj, obj.revision, data)
        return data

    def _loads(self, s: bytes) -> OutcomeWindow:
        return OutcomeWindow.from_record(avro.decode(s, "OutcomeWindow"))


codecs.register("outcome_window_object", OutcomeWindowCodec())


class OutcomeWindowValue(TableValue):
    """The model-outcomes table's value type."""

    class _options:
        serializer = "outcome_window_object"


class BookCodec(codecs.Codec):
    """A site or trial book (``models.kri``) <-> Avro single-object bytes."""

    def __init__(self, record_name: str, to_record, from_record) -> None:
        super().__init__()
        self.record_name, self._to, self._from = record_name, to_record, from_record

    def _dumps(self, obj) -> bytes:
        return avro.encode(self._to(obj), self.record_name)

    def _loads(self, s: bytes):
        return self._from(avro.decode(s, self.record_name))


codecs.register("site_book_object", BookCodec("SiteBook", kri.book_to_record, kri.book_from_record))
codecs.register(
    "trial_book_object",
    BookCodec("TrialBook", kri.trial_to_record, kri.trial_from_record),
)


class SiteBookValue(TableValue):
    """The site table's value type."""

    class _options:
        serializer = "site_book_object"


class TrialBookValue(TableValue):
    """The trial table's value type."""

    class _options:
        serializer = "trial_book_object"
