"""The decoded-state cache in front of the patient table (streams.statecache)."""

from __future__ import annotations

from trialwatch.streams.statecache import StateCache


class CountingTable(dict):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key, default=None):
        self.reads += 1
        return super().get(key, default)


def test_reads_come_from_memory_after_the_first_and_writes_go_through():
    table = CountingTable()
    table[b"P1"] = "old"
    cache = StateCache(table, size=10)
    assert cache.get(b"P1") == "old" and cache.get(b"P1") == "old"
    assert table.reads == 1
    cache.set(b"P1", "new")
    assert table[b"P1"] == "new" and cache.get(b"P1") == "new" and table.reads == 1


def test_a_missing_patient_is_not_cached_and_is_read_again():
    table = CountingTable()
    cache = StateCache(table, size=10)
    assert cache.get(b"P9") is None and cache.get(b"P9") is None
    assert table.reads == 2


def test_it_holds_at_most_size_states_and_a_clear_empties_it():
    table = CountingTable()
    cache = StateCache(table, size=2)
    for key in (b"A", b"B", b"C"):
        cache.set(key, key.decode())
    assert len(cache.states) == 2 and b"A" not in cache.states
    assert cache.get(b"A") == "A"  # still in the table
    cache.clear()
    assert len(cache.states) == 0 and cache.get(b"B") == "B"


def test_size_zero_turns_it_off():
    table = CountingTable()
    cache = StateCache(table, size=0)
    cache.set(b"P1", "s")
    assert cache.get(b"P1") == "s" and cache.get(b"P1") == "s" and table.reads == 2
