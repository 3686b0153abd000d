"""Faust codecs for our records, so topics can declare ``value_serializer="risk_score"``.

Imported only by ``streams``: importing ``schemas`` itself never imports Faust.
"""

from __future__ import annotations

from faust.serializers import codecs

from trialwatch.schemas import codec as avro
from trialwatch.schemas import registry

NAMES = {
    "visit_event": "VisitEvent",
    "risk_score": "RiskScore",
    "risk_alert": "RiskAlert",
    "patient_state": "PatientState",
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
