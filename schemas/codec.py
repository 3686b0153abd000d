"""Avro single-object encoding (Avro specification), on fastavro.

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | body

Decoding finds the writer version by fingerprint and resolves it to the current
reader version of the same record, so old and new producers coexist. Any bytes
at all decode to a record or raise a ``DecodeError`` naming the reason.
"""

from __future__ import annotations

from io import BytesIO

from fastavro import schemaless_reader, schemaless_writer

from trialwatch.schemas import registry
from trialwatch.schemas.contract import validate_event
from trialwatch.schemas.exceptions import (
    BadMarker,
    CorruptBody,
    EncodeError,
    TruncatedMessage,
    UnknownFingerprint,
)

MARKER = b"\xc3\x01"
HEADER_SIZE = 10


class SingleObjectCodec:
    """Encode/decode one record name; VisitEvent also enforces the contract."""

    def __init__(self, name: str, reader_version: int | None = None) -> None:
        self.name = name
        self.writer = registry.current(name)
        self.reader = self.writer if reader_version is None else registry.get(name, reader_version)
        self._header = MARKER + self.writer.fingerprint
        self._validate = validate_event if name == "VisitEvent" else None

    @property
    def fingerprint(self) -> bytes:
        return self.writer.fingerprint

    def encode(self, record: dict) -> bytes:
        if self._validate is not None:
            self._validate(record)
        out = BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self.writer.parsed, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{self.name} record does not fit its schema: {exc}") from None
        return out.getvalue()

    def decode(self, data: bytes) -> dict:
        record = _read_body(data, writer_of(data, self.name), self.reader)
        if self._validate is not None:
            self._validate(record)
        return record


def writer_of(data: bytes, name: str) -> registry.SchemaVersion:
    """The writer version named by a single-object header, which must be one of ``name``'s."""
    if len(data) < HEADER_SIZE:
        if not data.startswith(MARKER[: len(data)]) or not data:
            raise BadMarker("message does not start with the Avro single-object marker")
        raise TruncatedMessage(f"{len(data)} bytes: shorter than the 10-byte header")
    if data[:2] != MARKER:
        raise BadMarker("message does not start with the Avro single-object marker C3 01")
    writer = registry.BY_FINGERPRINT.get(data[2:HEADER_SIZE])
    if writer is None:
        raise UnknownFingerprint(f"unknown writer schema fingerprint {data[2:10].hex()}")
    if writer.name != name:
        raise UnknownFingerprint(f"message holds a {writer.name}, expected a {name}")
    return writer


def _read_body(data: bytes, writer: registry.SchemaVersion, reader: registry.SchemaVersion):
    body = BytesIO(data)
    body.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(body, writer.parsed, None if writer is reader else reader.parsed)
    except EOFError:
        raise TruncatedMessage("message ends inside the body") from None
    except (
        ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, OverflowError,
        MemoryError, AttributeError,
    ) as exc:  # fmt: skip
        raise CorruptBody(f"body does not decode: {type(exc).__name__}") from None
    except Exception as exc:  # fastavro raises its own errors on some schema mismatches
        raise CorruptBody(f"body does not decode: {type(exc).__name__}") from None
    if body.tell() != len(data):
        if body.tell() > len(data):
            raise TruncatedMessage("message ends inside the body")
        raise CorruptBody(f"{len(data) - body.tell()} trailing bytes after the record")
    if not isinstance(record, dict):
        raise CorruptBody("body is not a record")
    return record


_CODECS: dict[tuple[str, int | None], SingleObjectCodec] = {}


def codec_for(name: str, reader_version: int | None = None) -> SingleObjectCodec:
    key = (name, reader_version)
    found = _CODECS.get(key)
    if found is None:
        found = _CODECS[key] = SingleObjectCodec(name, reader_version)
    return found


def encode(record: dict, schema: str = "VisitEvent") -> bytes:
    """Single-object bytes of ``record`` with the current version of ``schema``."""
    return codec_for(schema).encode(record)


def decode(data: bytes, schema: str = "VisitEvent", reader_version: int | None = None) -> dict:
    """A ``schema`` record from single-object bytes of any known version of it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadMarker(f"expected bytes, got {type(data).__name__}")
    return codec_for(schema, reader_version).decode(bytes(data))


def encode_with(record: dict, schema: str, version: int) -> bytes:
    """Encode with an OLDER writer version (tests, and producers not yet upgraded)."""
    writer = registry.get(schema, version)
    out = BytesIO()
    out.write(MARKER + writer.fingerprint)
    try:
        schemaless_writer(out, writer.parsed, record)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise EncodeError(f"{schema} v{version}: {exc}") from None
    return out.getvalue()


__all__ = ["SingleObjectCodec", "codec_for", "decode", "encode", "encode_with", "writer_of"]
