"""Table recovery reads a RocksDB table's changelog as raw bytes, with no decode.

Why this exists: in faust-streaming 0.15.x, ``TableManager._update_channels``
subscribes recovery to ``table.changelog_topic.clone_using_queue(...)``, a clone
that keeps the table's value serializer. The conductor therefore decodes every
changelog record (for the patient table an Avro decode into a PatientState,
~100 us) into ``event.value``, and the RocksDB store's
``apply_changelog_batch`` then ignores it and writes ``event.message.value``,
the raw bytes. Decoding one million states that nobody reads took most of a
231 s cold restore.

The fix: for a table whose store is Faust's RocksDB store, recovery reads a
clone of the changelog topic whose value serializer is ``raw`` (value type
bytes). The table's writes are untouched: ``Collection.send_changelog`` passes
the table's own value serializer to every send, and the table's ``changelog_topic``
itself is not changed. A table on another store (``memory://`` keeps decoded
objects) still gets Faust's decoding clone.

We found no upstream issue for it. Remove this module (and its base in
``streams.app``'s ``TableManager``) once a Faust release reads changelogs into
a store that keeps bytes without decoding their values.
"""

from __future__ import annotations

from faust import stores
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager as FaustTableManager
from faust.types import ChannelT, CollectionT


def stores_raw_bytes(table: CollectionT) -> bool:
    """Whether recovery of ``table`` writes the changelog message's own bytes:
    its store is Faust's RocksDB store (the class ``Collection._new_store`` picks)."""
    return issubclass(stores.by_url(table._store or table.app.conf.store), RocksDBStore)


def recovery_channel(table: CollectionT, queue) -> ChannelT:
    """The channel recovery reads ``table``'s changelog through (into ``queue``)."""
    topic = table.changelog_topic
    if not stores_raw_bytes(table):
        return topic.clone_using_queue(queue)
    schema = table.app.conf.Schema(
        key_type=topic.key_type,
        value_type=bytes,
        key_serializer=topic.key_serializer,
        value_serializer="raw",
        allow_empty=True,  # a tombstone stays a deletion
    )
    # a new schema, not the topic's (``clone`` would update that one in place);
    # the serializers are passed too, as ``_clone_args`` carries the topic's own
    return topic.clone(
        queue=queue,
        is_iterator=True,
        schema=schema,
        value_type=bytes,
        key_serializer=topic.key_serializer,
        value_serializer="raw",
    )


class RawChangelogReads(FaustTableManager):
    """Faust's table manager, subscribing recovery through ``recovery_channel``."""

    async def _update_channels(self) -> None:
        # Faust's own method subscribes every table that has no channel yet.
        for table in self.values():
            if table not in self._channels:
                channel = recovery_channel(table, self.changelog_queue)
                self.app.topics.add(channel)
                self._channels[table] = channel
        await super()._update_channels()
