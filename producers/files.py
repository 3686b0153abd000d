"""Event files: JSON lines, CSV and Avro object containers, read with per-record reports.

A bad line (not JSON, not an object, unknown field, contract violation) is
reported with its 1-based number and reason; the rest of the file still flows.
A CSV file's header names VisitEvent fields (any subset, any order); an empty
cell is an absent field, and cells are read as the field's Avro type, so a
spreadsheet export of the same contract scores like its JSON lines.
"""

from __future__ import annotations

import csv
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
CSV_SUFFIXES = (".csv",)
EVENT_SUFFIXES = (*JSON_SUFFIXES, *CSV_SUFFIXES, ".avro")


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


def _avro_types() -> dict[str, str]:
    """VisitEvent field -> its Avro base type (int, long, double, boolean, string, enum)."""
    from trialwatch.schemas.registry import current

    types = {}
    for f in current("VisitEvent").source["fields"]:
        t = f["type"]
        t = next(x for x in t if x != "null") if isinstance(t, list) else t
        types[f["name"]] = t["type"] if isinstance(t, dict) else t
    return types


def _csv_value(kind: str, text: str) -> object:
    """A CSV cell as its field's type; raises ValueError with what was expected."""
    if kind in ("int", "long"):
        return int(text)
    if kind in ("double", "float"):
        return float(text)
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"{text!r} is not true/false")
    return text


def _csv_event(row: dict[str, str], types: dict[str, str]) -> dict:
    event = {}
    for name, text in row.items():
        if text is None or text == "":
            continue
        try:
            event[name] = _csv_value(types[name], text)
        except ValueError:
            raise ContractViolation(name, f"{text!r} is not a {types[name]}") from None
    return event


def _read_csv(path: Path, start: int) -> Iterator[FileRecord]:
    types = _avro_types()
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as src:
        rows = csv.DictReader(src)
        unknown = sorted(set(rows.fieldnames or ()) - types.keys())
        if not rows.fieldnames or unknown:
            why = f"unknown column {unknown[0]!r}" if unknown else "no header row"
            yield FileRecord(1, None, f"bad_header: {why} (columns are VisitEvent fields)")
            return
        for index, row in enumerate(rows, start=1):
            if index <= start:  # ``start`` counts records, as for the other formats
                continue
            number = rows.line_num  # reported: the spreadsheet's row, the header being 1
            if None in row:
                yield FileRecord(number, None, "malformed_csv: more cells than columns")
                continue
            try:
                yield _check(number, _csv_event(row, types))
            except ContractViolation as exc:
                yield FileRecord(number, None, f"contract_violation: {exc}")


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
    if path.suffix in CSV_SUFFIXES:
        return _read_csv(path, start)
    raise ValueError(f"unknown event file type {path.suffix!r}: use .jsonl, .csv or .avro")


def count_records(path: Path) -> int:
    """Records in the file (for progress bars); cheap for both formats."""
    path = Path(path)
    if path.suffix == ".avro":
        with open(path, "rb") as src:
            return sum(block.num_records for block in block_reader(src))
    with open(path, "rb") as src:
        lines = sum(1 for _ in src)
    return max(lines - 1, 0) if path.suffix in CSV_SUFFIXES else lines
