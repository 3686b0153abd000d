"""Table recovery that does not lose input events on a rebalance.

Why this exists: in faust-streaming 0.15.x, ``Recovery.on_recovery_completed``
resumes the input partitions, then awaits the seek to the committed offsets,
then resumes flow control, which CLEARS every agent's queue. While the seek is
awaited the fetcher is already delivering input records (flow is active for
the changelog read), and it advances its read offsets past them; the clear then
throws those records away and the re-fetched copies are dropped as "already
read". The result is a gap: offsets never processed, and either commits stall
behind the gap or a later commit jumps it and the events are lost (upstream
issue faust-streaming/faust#596, open). We saw it as one to four unscored
events per partition whenever a worker left the group.

The fix is order alone: seek while the input partitions are still paused (so
nothing of theirs is in flight), then clear the queues, resume the partitions
and resume the flow with no ``await`` in between, so no record can be delivered
into a queue that is about to be cleared. Remove this module (and the
``TableManager`` setting in ``streams.app``) once a Faust release fixes the order.

A second gap, same place: the seek is aiokafka's ``seek_to_committed``, which
leaves a partition that has no committed offset wherever its fetcher got to.
During a rebalance Faust can drain a paused partition's records and drop them
(aiokafka reads an active-partition set that Faust empties while the fetch
waits as "every partition"), so a group whose first worker died before its
first commit started its successor at the end of the input: nothing was ever
scored. The override therefore seeks such partitions to their earliest offset
(the app's ``consumer_auto_offset_reset``), as a committed one is sought back to
its commit. We found no upstream issue for it (faust-streaming/faust#216 is the
same family); remove this step once ``Consumer.perform_seek`` resets a
partition without a commit to the reset policy's offset.
"""

from __future__ import annotations

import asyncio

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery


class Recovery(FaustRecovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        await self._tables_recovered()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again: generation %s", generation_id)
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets (still paused).")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            await self._wait(
                self._seek_never_committed(assignment), timeout=app.conf.broker_request_timeout
            )
        # No await from here to resume_flow: nothing can land in a queue between
        # the clear (flow_control.resume) and the input partitions resuming.
        app.flow_control.resume()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_never_committed(self, assignment: set) -> None:
        """Input partitions without a committed offset go back to their earliest
        offset (``perform_seek`` filled ``_committed_offset`` just before)."""
        app = self.app
        if app.conf.consumer_auto_offset_reset != "earliest":
            return
        consumer = app.consumer
        never = sorted(
            tp
            for tp in assignment
            if not self._is_changelog_tp(tp) and not consumer._committed_offset.get(tp)
        )
        if not never:
            return
        earliest = await consumer.earliest_offsets(*never)
        for tp in never:
            await consumer.seek(tp, earliest[tp])
        self.log.info(
            "%d partition(s) without a committed offset start at the earliest", len(never)
        )

    async def _tables_recovered(self) -> None:
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)


class TableManager(FaustTableManager):
    """Faust's table manager with the recovery above (``TableManager`` setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
