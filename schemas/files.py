"""Avro object container files (the file form of our topics' records)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from fastavro import reader as container_reader
from fastavro import writer as container_writer

from trialwatch.schemas import registry


def write_container(records: Iterable[dict], path: Path, schema: str) -> None:
    """Write ``records`` with the current version of ``schema`` (deflate-compressed).

    The file header stores the schema as written in ``schemas/`` (with its
    logical types), so any Avro reader sees timestamps as timestamps.
    """
    version = registry.current(schema)
    with open(path, "wb") as out:
        container_writer(out, version.parsed, records, codec="deflate", metadata=None)


def read_container(path: Path, schema: str) -> Iterator[dict]:
    """Records of a container file, resolved to the current version of ``schema``."""
    with open(path, "rb") as src:
        yield from container_reader(src, reader_schema=registry.current(schema).parsed)
