"""Event files: JSON lines and Avro object containers, read with per-record reports.

A bad line (not JSON, not an object, unknown field, contract violation) is
reported with its 1-based number and reason; the rest of the file still flows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastavro import block_reader
from fastavro import reader as avro_reader

from trialwatch.schemas.contract import normalize_event, validate_event
from trialwatch.schemas.exceptions import ContractViolation
from trialwatch.schemas.files import write_container

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class FileRecord:
    """One line or record of an event file: an event, or why it is not one."""

    number: int
    event: dict | None
    error: str | None = None


def write_jsonl(events: Iterable[dict], path: Path) -> None:
    with open(path, "w") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")


def write_avro(events: Iterable[dict], path: Path) -> None:
    write_container(events, path, "VisitEvent")


def _check(number: int, candidate: object) -> FileRecord:
    try:
        return FileRecord(number, validate_event(normalize_event(candidate)))
    except ContractViolation as exc:
        return FileRecord(number, None, f"contract_violation: {exc}")


def _read_jsonl(path: Path, start: int) -> Iterator[FileRecord]:
    with open(path, encoding="utf-8", errors="replace") as src:
        for number, line in enumerate(src, start=1):
            if number <= start:
                continue
            if not line.strip():
                yield FileRecord(number, None, "empty line")
                continue
            try:
                candidate = json.loads(line)
            except json.JSONDecodeError as exc:
                yield FileRecord(number, None, f"malformed_json: {exc.msg} at column {exc.colno}")
                continue
            yield _check(number, candidate)


def _read_avro(path: Path, start: int) -> Iterator[FileRecord]:
    from trialwatch.schemas.registry import current

    number = 0
    with open(path, "rb") as src:
        try:
            for record in avro_reader(src, reader_schema=current("VisitEvent").parsed):
                number += 1
                if number > start:
                    yield _check(number, record)
        except Exception as exc:  # a corrupt block ends what can be read, with a report
            yield FileRecord(number + 1, None, f"corrupt_container: {type(exc).__name__}: {exc}")


def read_events(path: Path, start: int = 0) -> Iterator[FileRecord]:
    """Records of ``path`` after the first ``start`` (resume), by file type."""
    path = Path(path)
    if path.suffix == ".avro":
        return _read_avro(path, start)
    if path.suffix in JSON_SUFFIXES:
        return _read_jsonl(path, start)
    raise ValueError(f"unknown event file type {path.suffix!r}: use .jsonl or .avro")


def count_records(path: Path) -> int:
    """Records in the file (for progress bars); cheap for both formats."""
    path = Path(path)
    if path.suffix == ".avro":
        with open(path, "rb") as src:
            return sum(block.num_records for block in block_reader(src))
    with open(path, "rb") as src:
        return sum(1 for _ in src)
