"""Table writes from the body of a micro-batch (``Stream.noack_take``).

Why this exists: a Faust table finds the partition of a write (its changelog
record and its RocksDB store) through ``faust.streams.current_event()``, a
context variable the stream sets for the event it is iterating. ``noack_take``
fills its buffer in a background task, so the batch body runs with no current
event and every table write raises "Cannot modify table key from outside of
stream iteration" (upstream issue faust-streaming/faust#497, open).
``writing_as(event)`` sets the variable for the write, as Faust's own
iteration does, and restores it after.

Remove this module (and its use in ``streams.agents``) once a Faust release sets
the current event in a batch body or gives tables a write that takes the
partition.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust import streams as faust_streams
from faust.types import EventT


@contextmanager
def writing_as(event: EventT) -> Iterator[None]:
    """Table writes inside go to ``event``'s partition."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)
