"""The app runs with the Faust overrides that reliability depends on.

Their behaviour is proven against the real broker in
``tests/integration/test_reliability.py`` (broker restart, two workers); these
tests guard the wiring, which a refactor of ``streams/app.py`` could drop silently,
and the order of calls the recovery override exists for, on a recording fake app.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import current_event
from faust.types import TP

from trialwatch.streams.app import app, settings
from trialwatch.streams.eventcontext import writing_as
from trialwatch.streams.recovery import Recovery
from trialwatch.streams.statecache import StateCache
from trialwatch.streams.tables import patient_to_state
from trialwatch.streams.transport import IdempotentProducer


async def test_every_producer_of_the_app_is_idempotent_with_acks_all():
    producer = app.transport.create_producer()
    assert isinstance(producer, IdempotentProducer)
    client = producer._new_producer()
    try:
        # aiokafka keeps a transaction manager exactly when idempotence is on (and
        # refuses to build one unless acks is "all")
        assert client._txn_manager is not None
    finally:
        await client.stop()


def test_the_app_recovers_its_tables_with_the_override():
    assert type(app.tables.recovery) is Recovery


INPUT = {TP("visit-events", 0), TP("visit-events", 1)}
COMMITTED = {TP("visit-events", 0): 120}  # partition 1 was never committed
EARLIEST = {TP("visit-events", 1): 3}
CHANGELOG = {TP("trialwatch-patient_to_state-changelog", 0)}


def _recording_recovery(log: list[Any], generation_id: int) -> SimpleNamespace:
    """What ``Recovery.on_recovery_completed`` touches, recording each call in ``log``.

    The input partitions start paused, as Faust leaves them while tables recover;
    the seek and the other awaited calls suspend, as network calls do.
    """
    paused = set(INPUT)

    def note(name: str):
        def call(*args: Any) -> None:
            log.append(name)

        return call

    def anote(name: str):
        async def call(*args: Any) -> None:
            log.append(name)
            await asyncio.sleep(0)

        return call

    async def perform_seek() -> None:
        log.append(("perform_seek", frozenset(paused & INPUT)))
        await asyncio.sleep(0)

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        log.append(("earliest_offsets", frozenset(tps)))
        await asyncio.sleep(0)
        return {tp: EARLIEST[tp] for tp in tps}

    async def seek(tp: TP, offset: int) -> None:
        log.append(("seek", tp, offset, tp in paused))

    def resume_partitions(tps: set[TP]) -> None:
        log.append(("resume_partitions", frozenset(tps)))
        paused.difference_update(tps)

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    consumer = SimpleNamespace(
        assignment=lambda: INPUT | CHANGELOG,
        perform_seek=perform_seek,
        _committed_offset=dict(COMMITTED),  # as perform_seek leaves it
        earliest_offsets=earliest_offsets,
        seek=seek,
        resume_partitions=resume_partitions,
        resume_flow=note("consumer.resume_flow"),
    )

    class Table:  # hashable, as tables are dict keys in Recovery
        on_recovery_completed = staticmethod(anote("table.on_recovery_completed"))

    table = Table()
    fake_app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=generation_id,
        conf=SimpleNamespace(broker_request_timeout=30.0, consumer_auto_offset_reset="earliest"),
        on_rebalance_complete=SimpleNamespace(send=anote("on_rebalance_complete")),
        flow_control=SimpleNamespace(resume=note("flow_control.resume")),  # clears the queues
        _fetcher=SimpleNamespace(maybe_start=anote("fetcher.maybe_start")),
        assignor=SimpleNamespace(assigned_standbys=set),
        on_rebalance_end=note("app.on_rebalance_end"),
    )
    tables = SimpleNamespace(
        values=lambda: [table],
        changelog_topics={tp.topic for tp in CHANGELOG},
        on_actives_ready=note("tables.on_actives_ready"),
        on_standbys_ready=note("tables.on_standbys_ready"),
    )
    recovery = SimpleNamespace(
        app=fake_app,
        log=logging.getLogger("test.recovery"),
        tables=tables,
        actives_for_table={table: set()},
        standbys_for_table={table: set()},
        completed=SimpleNamespace(set=note("completed.set")),
        _set_recovery_ended=note("recovery_ended"),
        _wait=wait,
        _is_changelog_tp=lambda tp: tp.topic in tables.changelog_topics,
    )
    recovery._tables_recovered = lambda: Recovery._tables_recovered(recovery)
    recovery._seek_never_committed = lambda tps: Recovery._seek_never_committed(recovery, tps)
    return recovery


async def _run_recovery(generation_id: int, current_generation: int = 7) -> list[Any]:
    """The override's calls, with a "tick" wherever it let another task run."""
    log: list[Any] = []
    recovery = _recording_recovery(log, current_generation)
    done = False

    async def other_task() -> None:
        while not done:
            log.append("tick")
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(other_task())
    try:
        await Recovery.on_recovery_completed(recovery, generation_id)
    finally:
        done = True
        await ticker
    return log


def _names(log: list[Any]) -> list[str]:
    return [entry[0] if isinstance(entry, tuple) else entry for entry in log]


async def test_table_recovery_seeks_before_it_resumes_the_input_partitions():
    log = await _run_recovery(generation_id=7)
    names = _names(log)
    assert [name for name in names if name != "tick"] == [
        "on_rebalance_complete",
        "recovery_ended",
        "table.on_recovery_completed",
        "perform_seek",
        "earliest_offsets",
        "seek",
        "flow_control.resume",  # clears the agents' queues
        "resume_partitions",
        "completed.set",
        "consumer.resume_flow",
        "fetcher.maybe_start",
        "tables.on_actives_ready",
        "tables.on_standbys_ready",
        "app.on_rebalance_end",
    ]
    seek, clear = names.index("perform_seek"), names.index("flow_control.resume")
    # the seek ran while every input partition was still paused ...
    assert log[seek] == ("perform_seek", frozenset(INPUT))
    # a partition never committed goes back to its earliest offset, still paused
    # (aiokafka's seek to committed would leave it where the fetcher got to) ...
    never = TP("visit-events", 1)
    assert ("earliest_offsets", frozenset({never})) in log
    assert ("seek", never, EARLIEST[never], True) in log
    assert [e for e in log if e[0] == "seek"] == [("seek", never, EARLIEST[never], True)]
    # ... and only the input partitions are resumed, not the changelog
    assert ("resume_partitions", frozenset(INPUT)) in log
    # no other task ran between the clear and the resumed flow (no await in between),
    assert names[clear : names.index("consumer.resume_flow") + 1] == [
        "flow_control.resume",
        "resume_partitions",
        "completed.set",
        "consumer.resume_flow",
    ]
    # while one did run during the seek: the detector sees a suspension.
    assert "tick" in names[seek:clear]


async def test_table_recovery_of_a_stale_generation_resumes_nothing():
    names = _names(await _run_recovery(generation_id=6))
    assert not {"perform_seek", "seek", "flow_control.resume", "resume_partitions"} & set(names)
    assert "consumer.resume_flow" not in names and "completed.set" not in names


# ------------------------------------------- table writes from a micro-batch
class _Event:
    """What a table write reads of the current event: its message's topic and partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic=settings.visit_events_topic, partition=partition)


def test_a_table_write_outside_stream_iteration_has_no_partition_without_the_override():
    assert current_event() is None
    with pytest.raises(TypeError, match="outside of stream iteration"):
        patient_to_state.partition_for_key(b"P1")


def test_writing_as_gives_table_writes_the_events_partition_and_restores_it():
    outer, inner = _Event(2), _Event(5)
    with writing_as(outer):
        with writing_as(inner):
            assert current_event() is inner
            assert patient_to_state.partition_for_key(b"P1") == 5
        assert current_event() is outer
        assert patient_to_state.partition_for_key(b"P1") == 2
    assert current_event() is None


def test_the_scoring_agent_writes_each_state_in_its_events_partition(monkeypatch):
    from trialwatch.streams import agents

    partitions: dict[bytes, int] = {}

    class Table(dict):
        def __setitem__(self, key: bytes, value: Any) -> None:
            partitions[key] = patient_to_state.partition_for_key(key)
            super().__setitem__(key, value)

    monkeypatch.setattr(agents, "STATES", StateCache(Table(), 10))
    agents._set_states([(b"P1", "s1", _Event(3)), (b"P2", "s2", _Event(6))])
    assert partitions == {b"P1": 3, b"P2": 6}
    assert agents.STATES.get(b"P1") == "s1" and current_event() is None


async def test_the_agent_batches_its_outputs_with_each_topics_own_record(monkeypatch):
    """The scoring agent's sends bypass Faust's Topic.send (streams.batchsend): each
    output is encoded with its topic's declared Avro record and waits in the outbox
    until the batch flushes; a dead letter keeps its bytes and gets its headers."""
    from tests.schemas.factories import score_factory
    from trialwatch.schemas import codec
    from trialwatch.streams import agents
    from trialwatch.streams.batchsend import BatchSender

    outbox = BatchSender(lambda: None)
    monkeypatch.setattr(agents, "OUTBOX", outbox)
    score = score_factory()
    await agents._sender(agents.risk_scores_topic)(b"P1", score)
    await agents._send_dead_letter(b"P2", b"\x00garbage", {"reason": "bad_marker"})
    [(topic, key, value, headers), dead] = outbox._records
    assert (topic, key, headers) == (settings.risk_scores_topic, b"P1", [])
    assert codec.decode(value, "RiskScore") == codec.decode(
        codec.encode(score, "RiskScore"), "RiskScore"
    )
    assert dead == (settings.dlq_topic, b"P2", b"\x00garbage", [("reason", b"bad_marker")])


# ---------------------------------------------- changelogs recovered as bytes
def _states(n: int = 3) -> list:
    from trialwatch.models.state import apply
    from trialwatch.producers.simulator import SimulationConfig, simulate

    states: dict = {}
    for event in simulate(SimulationConfig(seed=5, n_participants=n, n_trials=1)).events:
        states[event["patient_id"]] = apply(states.get(event["patient_id"]), event)[0]
    return list(states.values())


def _changelog_message(table, partition: int, offset: int, key: bytes, value: bytes | None):
    from faust.types.tuples import Message

    return Message(
        topic=table.changelog_topic_name,
        partition=partition,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=key,
        value=value,
        checksum=None,
    )


def test_the_app_reads_rocksdb_changelogs_raw_and_still_writes_them_encoded():
    from trialwatch.streams.rawchangelog import RawChangelogReads, recovery_channel
    from trialwatch.streams.recovery import TableManager as RecoveringTableManager

    assert isinstance(app.tables, RawChangelogReads)
    assert isinstance(app.tables, RecoveringTableManager)  # both overrides, one manager
    assert settings.store.startswith("rocksdb")
    channel = recovery_channel(patient_to_state, asyncio.Queue())
    assert (channel.value_serializer, channel.value_type) == ("raw", bytes)
    # the table's own changelog topic (which its writes go through) still encodes
    assert patient_to_state.changelog_topic.value_serializer == "patient_state_object"
    assert patient_to_state.changelog_topic.schema is not channel.schema


async def test_a_restored_value_is_the_bytes_written_and_decodes_to_the_same_state(tmp_path):
    """Write path (the table's codec) -> changelog bytes -> the override's channel ->
    Faust's RocksDB ``apply_changelog_batch`` -> the same bytes in the store."""
    import faust

    from trialwatch.streams.app import TableManager
    from trialwatch.streams.codecs import PatientStateValue
    from trialwatch.streams.rawchangelog import recovery_channel

    own = faust.App(
        "test-rawchangelog", datadir=str(tmp_path), store="rocksdb://", TableManager=TableManager
    )
    table = own.Table("states", default=None, partitions=2, key_type=bytes,
                      value_type=PatientStateValue)  # fmt: skip
    states = _states()
    written = {
        state.patient_id.encode(): own.serializers.dumps_value(
            PatientStateValue, state, serializer=table.value_serializer
        )
        for state in states
    }
    channel = recovery_channel(table, asyncio.Queue())
    events = [
        await channel.decode(_changelog_message(table, i % 2, i, key, value), propagate=True)
        for i, (key, value) in enumerate(written.items())
    ]
    assert [event.value for event in events] == list(written.values())  # no decode
    gone = next(iter(written))
    events.append(await channel.decode(_changelog_message(table, 0, 99, gone, None)))
    store = table.data
    try:
        store.apply_changelog_batch(events, to_key=table._to_key, to_value=table._to_value)
        for i, (key, value) in enumerate(written.items()):
            stored = store._db_for_partition(i % 2).get(key)
            if key == gone:
                assert stored is None  # the tombstone deleted it
            else:
                assert stored == value
                assert store[key] == states[i]  # the table's read decodes it
        assert store.persisted_offset(TP(table.changelog_topic_name, 0)) == 99
    finally:
        for db in store._dbs.values():
            db.close()


async def test_a_table_on_another_store_still_recovers_decoded_values():
    import faust

    from trialwatch.streams.app import TableManager
    from trialwatch.streams.codecs import PatientStateValue
    from trialwatch.streams.rawchangelog import recovery_channel

    own = faust.App("test-rawchangelog-memory", store="memory://", TableManager=TableManager)
    table = own.Table("states", default=None, partitions=1, key_type=bytes,
                      value_type=PatientStateValue)  # fmt: skip
    state = _states(1)[0]
    value = own.serializers.dumps_value(PatientStateValue, state, serializer=table.value_serializer)
    channel = recovery_channel(table, asyncio.Queue())
    event = await channel.decode(_changelog_message(table, 0, 0, b"P", value), propagate=True)
    assert channel.value_serializer == "patient_state_object"
    table.data.apply_changelog_batch([event], to_key=table._to_key, to_value=table._to_value)
    assert table.data[b"P"] == state
