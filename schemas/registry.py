"""Every schema of the package, parsed once at import, found by name or fingerprint.

Files are named ``<snake_name>.v<N>.avsc``; the highest N of a record name is its
current writer and reader version. Fingerprints are the Avro specification's
CRC-64-AVRO (Rabin) of the schema's Parsing Canonical Form.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from trialwatch.schemas.exceptions import SchemaError

SCHEMA_DIR = Path(__file__).resolve().parent
_FILE = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>\d+)\.avsc$")

_EMPTY = 0xC15D213AA4D7A795  # the spec's CRC-64-AVRO seed
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint defined by the Avro specification."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def _without_logical_types(schema: Any) -> Any:
    """Timestamps stay plain int epoch-ms in Python (no datetime on the hot path).

    Parsing Canonical Form drops ``logicalType``, so the fingerprint is unchanged.
    """
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # record name without namespace, e.g. "VisitEvent"
    version: int
    path: Path
    source: dict  # the .avsc as written (with logical types)
    parsed: Any  # fastavro-parsed, logical types removed (runtime form)
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as in the single-object header


def _load(path: Path) -> SchemaVersion:
    match = _FILE.match(path.name)
    if match is None:
        raise SchemaError(f"schema file {path.name} is not named <name>.v<N>.avsc")
    source = json.loads(path.read_text())
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(source)))
    fingerprint = crc64_avro(canonical.encode()).to_bytes(8, "little")
    parsed = parse_schema(_without_logical_types(source))
    return SchemaVersion(
        name=source["name"],
        version=int(match["version"]),
        path=path,
        source=source,
        parsed=parsed,
        canonical=canonical,
        fingerprint=fingerprint,
    )


def _load_all() -> tuple[dict[str, dict[int, SchemaVersion]], dict[bytes, SchemaVersion]]:
    by_name: dict[str, dict[int, SchemaVersion]] = {}
    by_fingerprint: dict[bytes, SchemaVersion] = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        version = _load(path)
        by_name.setdefault(version.name, {})[version.version] = version
        by_fingerprint[version.fingerprint] = version
    return by_name, by_fingerprint


BY_NAME, BY_FINGERPRINT = _load_all()


def versions(name: str) -> dict[int, SchemaVersion]:
    try:
        return BY_NAME[name]
    except KeyError:
        raise SchemaError(f"no schema named {name!r}; known: {sorted(BY_NAME)}") from None


def current(name: str) -> SchemaVersion:
    """The newest version of ``name``: what we write, and what we read into."""
    known = versions(name)
    return known[max(known)]


def get(name: str, version: int) -> SchemaVersion:
    try:
        return versions(name)[version]
    except KeyError:
        raise SchemaError(f"{name} has no version {version}") from None
