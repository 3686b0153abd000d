"""The PatientState v3 byte layout (``patient_state.v3.avsc``): packed, and cheap to code.

v1/v2 spell every ring as parallel Avro arrays, so fastavro walks some 50 fields
and 300 values a state through a dict. v3 is still an Avro record with a
registered fingerprint, but a flat one: every number in one fixed-size
little-endian block (``numbers``), the six rings as runs of fixed-width records
in one ``bytes`` field (``rings``), the strings as Avro strings. The schema's doc
gives the exact layout.

The Avro framing of this record (strings, unions, one bytes field, one array) is
written and read here directly, and ``struct`` packs the blocks: fastavro's
generic dict path costs more than the rest of the work. The bytes are plain Avro
either way; the tests hold this module to fastavro and to the reference ``avro``
package on the same records, byte for byte.

Values travel as one flat tuple in ``FIELDS`` order (names of PatientState
fields; ``models.state`` maps them to and from the dataclass).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import chain

from trialwatch.schemas import registry
from trialwatch.schemas.codec import HEADER_SIZE, MARKER, writer_of
from trialwatch.schemas.exceptions import CorruptBody, EncodeError, TruncatedMessage

NAME = "PatientState"
VERSION = 3
LEGACY_READER = 2  # v1 and v2 values are read with this schema (v1 resolves to it)

INT_FIELDS = (
    "age", "planned_visits", "visit_interval_days", "visit_window_days", "enrolled_at",
    "last_event_time", "n_applied", "n_after_end", "completed_visits", "missed_visits",
    "resolved_visits", "late_ms_sum", "ae_count", "ae_max_grade", "epro_count", "unreached_total",
)  # fmt: skip
OPTIONAL_NUMBER_FIELDS = (
    "epro_first", "epro_first_at", "ended_at", "last_alert_at", "last_event_hash",
    "last_alert_event_hash",
)  # fmt: skip
STRING_FIELDS = ("patient_id", "trial_id", "site_id", "phase", "arm", "sex")
OPTIONAL_STRING_FIELDS = ("end_type", "last_alert_tier", "previous_alert_tier")
RING_FIELDS = ("visits", "aes", "epros", "contacts", "seen", "open_predictions")
FIELDS = (
    *INT_FIELDS, "distance_km", "ended", *OPTIONAL_NUMBER_FIELDS, *STRING_FIELDS,
    *OPTIONAL_STRING_FIELDS, *RING_FIELDS,
)  # fmt: skip

NUMBERS = struct.Struct("<16qd?d5qB6H")
# One record of each ring; an open prediction's model version is a string, kept
# apart in ``prediction_versions``.
RING_RECORDS = tuple(struct.Struct(f) for f in ("<qqBd", "<qBB", "<qd", "<qB", "<qq", "<qdB"))
_FULL_MASK = (1 << len(OPTIONAL_NUMBER_FIELDS)) - 1
if tuple(r.size for r in RING_RECORDS) != (25, 10, 16, 9, 16, 17):  # pragma: no cover
    raise RuntimeError("unpack_blocks' ring sizes differ from RING_RECORDS")

WRITER = registry.get(NAME, VERSION)
_HEADER = MARKER + WRITER.fingerprint
if WRITER.source["fields"][0]["type"]["size"] != NUMBERS.size:  # pragma: no cover
    raise RuntimeError("patient_state.v3.avsc's numbers size differs from state_layout.NUMBERS")

_SMALL = tuple(bytes((n,)) for n in range(128))  # one-byte varints
_NULL, _SOME = b"\x00", b"\x02"  # union branch 0 (null), branch 1 (string)
_RINGS_STRUCTS: dict[tuple[int, ...], struct.Struct] = {}


def _long(n: int) -> bytes:
    """Avro ``long``: zigzag, then base-128 varint (lengths and counts here are >= 0)."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(s: str) -> bytes:
    data = s.encode()
    return _long(len(data)) + data


def _rings_struct(counts: tuple[int, ...]) -> struct.Struct:
    found = _RINGS_STRUCTS.get(counts)
    if found is None:
        if len(_RINGS_STRUCTS) >= 4096:  # bounded: ring lengths are small, but be safe
            _RINGS_STRUCTS.clear()
        fmt = "".join(r.format[1:] * n for r, n in zip(RING_RECORDS, counts, strict=True))
        found = _RINGS_STRUCTS[counts] = struct.Struct("<" + fmt)
    return found


def pack_blocks(values: Sequence) -> tuple[bytes, bytes, list[str]]:
    """``numbers``, ``rings`` and ``prediction_versions`` of a state's FIELDS values."""
    o0, o1, o2, o3, o4, o5 = values[18:24]
    mask = (
        (o0 is not None)
        | (o1 is not None) << 1
        | (o2 is not None) << 2
        | (o3 is not None) << 3
        | (o4 is not None) << 4
        | (o5 is not None) << 5
    )
    rings = values[33:39]
    counts = tuple(map(len, rings))
    numbers = NUMBERS.pack(
        *values[:18],
        0.0 if o0 is None else o0,
        0 if o1 is None else o1,
        0 if o2 is None else o2,
        0 if o3 is None else o3,
        0 if o4 is None else o4,
        0 if o5 is None else o5,
        mask,
        *counts,
    )
    predictions = rings[5]
    records = chain(*rings[:5], [p[:3] for p in predictions]) if predictions else chain(*rings)
    packed = _rings_struct(counts).pack(*chain.from_iterable(records))
    return numbers, packed, [p[3] for p in predictions]


def encode(values: Sequence) -> bytes:
    """Single-object v3 bytes of a state given as its FIELDS values."""
    try:
        numbers, rings, versions = pack_blocks(values)
        parts = [_HEADER, numbers]
        parts += [_string(s) for s in values[24:30]]
        for s in values[30:33]:
            parts += (_NULL,) if s is None else (_SOME, _string(s))
        parts += (_long(len(rings)), rings)
        if versions:
            parts += (_long(len(versions)), *map(_string, versions), _NULL)
        else:
            parts.append(_NULL)
    except (struct.error, TypeError, AttributeError, UnicodeEncodeError, OverflowError) as exc:
        raise EncodeError(f"PatientState v3: {exc}") from None
    return b"".join(parts)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    n, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = data[pos]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos + 1
        shift += 7
        if shift > 63:
            raise CorruptBody("body does not decode: varint longer than 10 bytes")


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _read_long(data, pos)
    if n < 0:
        raise CorruptBody("body does not decode: negative length")
    end = pos + n
    if end > len(data):
        raise TruncatedMessage("message ends inside the body")
    return data[pos:end], end


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bytes(data, pos)
    return raw.decode(), pos


def read_body(data: bytes) -> tuple[bytes, list, bytes, list[str]]:
    """The Avro fields of a v3 body: numbers, the nine strings (None for null), rings,
    the prediction versions. Any Avro encoding of the record reads (array blocks
    of any size, negative block counts)."""
    pos = HEADER_SIZE + NUMBERS.size
    if len(data) < pos:
        raise TruncatedMessage("message ends inside the body")
    numbers = data[HEADER_SIZE:pos]
    strings: list = []
    for _ in STRING_FIELDS:
        s, pos = _read_string(data, pos)
        strings.append(s)
    for _ in OPTIONAL_STRING_FIELDS:
        branch, pos = _read_long(data, pos)
        if branch == 0:
            strings.append(None)
        elif branch == 1:
            s, pos = _read_string(data, pos)
            strings.append(s)
        else:
            raise CorruptBody(f"body does not decode: union branch {branch}")
    rings, pos = _read_bytes(data, pos)
    versions: list[str] = []
    while True:
        count, pos = _read_long(data, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _size, pos = _read_long(data, pos)
        for _ in range(count):
            s, pos = _read_string(data, pos)
            versions.append(s)
    if pos != len(data):
        raise CorruptBody(f"{len(data) - pos} trailing bytes after the record")
    return numbers, strings, rings, versions


def unpack_blocks(numbers: bytes, strings: Sequence, rings: bytes, versions: Sequence) -> tuple:
    """FIELDS values from the v3 record's fields; a layout that does not add up is corrupt."""
    n = NUMBERS.unpack(numbers)
    mask = n[24]
    if mask & ~_FULL_MASK:
        raise CorruptBody(f"body does not decode: presence mask {mask:#x}")
    optional = (
        n[18] if mask & 1 else None,
        n[19] if mask & 2 else None,
        n[20] if mask & 4 else None,
        n[21] if mask & 8 else None,
        n[22] if mask & 16 else None,
        n[23] if mask & 32 else None,
    )
    c0, c1, c2, c3, c4, c5 = counts = n[25:]
    size = 25 * c0 + 10 * c1 + 16 * c2 + 9 * c3 + 16 * c4 + 17 * c5
    if size != len(rings) or c5 != len(versions):
        raise CorruptBody("body does not decode: ring lengths do not match the rings")
    view = memoryview(rings)
    out = []
    pos = 0
    for record, count in zip(RING_RECORDS, counts, strict=True):
        if count:
            end = pos + record.size * count
            out.append(tuple(record.iter_unpack(view[pos:end])))
            pos = end
        else:
            out.append(())
    if versions:
        out[5] = tuple((*p, v) for p, v in zip(out[5], versions, strict=True))
    return (*n[:18], *optional, *strings, *out)


def decode(data: bytes) -> tuple:
    """FIELDS values of single-object v3 bytes; anything else raises a DecodeError."""
    writer = writer_of(data, NAME)
    if writer is not WRITER:
        raise CorruptBody(f"PatientState v{writer.version}, not v{VERSION}")
    return decode_body(data)


def decode_body(data: bytes) -> tuple:
    """``decode`` for bytes whose header is known to name v3."""
    try:
        return unpack_blocks(*read_body(data))
    except IndexError:
        raise TruncatedMessage("message ends inside the body") from None
    except UnicodeDecodeError:
        raise CorruptBody("body does not decode: UnicodeDecodeError") from None


__all__ = ["FIELDS", "LEGACY_READER", "VERSION", "WRITER", "decode", "decode_body", "encode"]
