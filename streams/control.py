"""Model control: which versions every worker serves, on one compacted topic.

The ``model-control`` topic has one partition, so all decisions are totally
ordered, and is compacted by slot (``champion``, ``challenger``,
``calibration|<model>|<trial>``), so it stays a few records long. Writers:
``trialwatch promote`` / ``rollback`` / ``shadow`` / ``recalibrate --publish``
and the worker that owns a trial's outcome window (automatic recalibration).

Every worker reads the topic from the beginning before it scores its first
event (``ModelControl.start``), then follows it with a plain aiokafka consumer
outside the consumer group (each worker needs every record; a Faust table
would shard them). On a change it loads and validates the versions named
(``streams.model.load_version``) and swaps the ``Serving`` snapshot whole;
a version that fails validation is refused (logged, counted in
``trialwatch_model_control_rejected``) and the worker keeps what it serves.

How long versions can differ with N workers: each worker applies a record
after its next fetch (``FOLLOW_WAIT_MS``) plus the artifact load (~0.1-0.5 s),
so workers switch within about a second of each other. A patient's partition
is served by one worker at a time, so each partition switches at one offset;
a rebalance in that second could hand a partition to a worker that has not
switched yet, which is the one way a partition sees the old version again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from trialwatch.models import artifacts
from trialwatch.models.recalibration import Calibration
from trialwatch.schemas import codec as avro
from trialwatch.schemas.exceptions import TrialwatchError
from trialwatch.streams import metrics
from trialwatch.streams.model import ModelHolder, Serving, load_version
from trialwatch.streams.security import aiokafka_kwargs, start_or_exit
from trialwatch.streams.settings import Settings

log = logging.getLogger(__name__)

FOLLOW_WAIT_MS = 250
CHAMPION, CHALLENGER = "champion", "challenger"


def calibration_slot(model_version: str, trial_id: str) -> str:
    return f"calibration|{model_version}|{trial_id}"


@dataclass(frozen=True)
class ControlState:
    """The newest record of every slot, folded in topic order."""

    champion: str | None = None
    previous: str | None = None
    challenger: str | None = None
    calibrations: dict[tuple[str, str], Calibration] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> ControlState:
        slot = record["slot"]
        if slot == CHAMPION:
            return replace(
                self, champion=record["model_version"], previous=record["previous_version"]
            )
        if slot == CHALLENGER:
            return replace(self, challenger=record["model_version"])
        if slot.startswith("calibration|") and record.get("calibration_json"):
            cal = Calibration.from_json(json.loads(record["calibration_json"]))
            return replace(
                self, calibrations={**self.calibrations, (cal.model_version, cal.trial_id): cal}
            )
        return self

    def calibrations_of(self, model_version: str) -> dict[str, Calibration]:
        return {t: c for (m, t), c in self.calibrations.items() if m == model_version}


def control_record(slot: str, issued_by: str, **values: Any) -> dict[str, Any]:
    return {
        "slot": slot,
        "model_version": values.get("model_version"),
        "previous_version": values.get("previous_version"),
        "calibration_json": values.get("calibration_json"),
        "issued_at": int(time.time() * 1000),
        "issued_by": issued_by,
    }


def calibration_record(cal: Calibration, issued_by: str) -> dict[str, Any]:
    return control_record(
        calibration_slot(cal.model_version, cal.trial_id),
        issued_by,
        model_version=cal.model_version,
        calibration_json=json.dumps(cal.to_json(), sort_keys=True),
    )


async def publish(s: Settings, record: dict[str, Any]) -> None:
    """Send one control record and wait until the broker has it (acks=all)."""
    producer = AIOKafkaProducer(**aiokafka_kwargs(s), acks="all", enable_idempotence=True)
    await start_or_exit(producer, s)
    try:
        await producer.send_and_wait(
            s.model_control_topic,
            key=record["slot"].encode(),
            value=avro.encode(record, "ModelControl"),
            partition=0,
        )
    finally:
        await producer.stop()


async def read_state(s: Settings, timeout_s: float = 30.0) -> ControlState:
    """The control topic folded to its current end (for commands)."""
    consumer = _consumer(s)
    await start_or_exit(consumer, s, timeout_s)
    try:
        return await _catch_up(consumer, s, ControlState(), timeout_s)
    except TimeoutError as exc:
        raise SystemExit(f"trialwatch: {exc or 'the broker did not answer'}") from None
    finally:
        await consumer.stop()


def _consumer(s: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **aiokafka_kwargs(s), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def _catch_up(
    consumer: AIOKafkaConsumer, s: Settings, state: ControlState, timeout_s: float
) -> ControlState:
    """Fold the topic from its beginning to its end offset as it is now.

    Bounded as a whole: a broker that does not answer raises TimeoutError, and
    the caller retries with a new consumer. Progress is read from the records;
    an empty fetch also checks ``position()``, which passes offsets that hold no
    record (compacted away, or a transaction marker). An empty topic needs no
    fetch at all.
    """
    tp = TopicPartition(s.model_control_topic, 0)

    async def read() -> ControlState:
        folded = state
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        done = 0
        while done < end:
            batches = await consumer.getmany(tp, timeout_ms=FOLLOW_WAIT_MS)
            folded = _fold(folded, batches)
            done = max([done, *(m.offset + 1 for ms in batches.values() for m in ms)])
            if not batches:
                done = max(done, await consumer.position(tp))
        return folded

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise TimeoutError(
            f"could not read {s.model_control_topic} to its end in {timeout_s:.0f} s"
        ) from None


def _fold(state: ControlState, batches: dict) -> ControlState:
    for messages in batches.values():
        for message in messages:
            try:
                state = state.apply(avro.decode(message.value, "ModelControl"))
            except (TrialwatchError, ValueError, KeyError) as exc:
                log.error("model-control record at offset %s refused: %s", message.offset, exc)
                metrics.CONTROL_REJECTED.labels("unreadable").inc()
    return state


RETRY_S = 2.0  # between attempts to read the control topic at start-up


class ModelControl:
    """A worker's follower of the control topic; swaps ``holder``'s snapshot."""

    def __init__(self, s: Settings, holder: ModelHolder) -> None:
        self.settings = s
        self.holder = holder
        self.state = ControlState()
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._loaded: dict[str, Any] = {}  # version -> Scorer (no calibrations attached)

    async def start(self) -> None:
        """Read the topic to its end and serve what it says; then ``ready`` is set
        (the scoring agent waits for it). Retries until the broker answers."""
        while True:
            try:
                self._consumer = _consumer(self.settings)
                await asyncio.wait_for(self._consumer.start(), 30.0)
                self.state = await _catch_up(self._consumer, self.settings, self.state, 15.0)
                break
            except Exception as exc:  # the broker away or a hung read: a new consumer
                log.error("cannot read %s yet: %s", self.settings.model_control_topic, exc)
                await self._drop_consumer()
                await asyncio.sleep(RETRY_S)
        self._rebuild()
        self.ready.set()

    async def _drop_consumer(self) -> None:
        """Stop a consumer whose read failed. Stopping one that lost its broker can
        raise CancelledError from aiokafka's own tasks: that is not this task being
        cancelled, and letting it out ended the retry loop for good (the worker then
        never scored). A real cancellation of this task still propagates."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("model-control: a failed consumer was cancelled while stopping")
        except Exception as exc:
            log.warning("model-control: a failed consumer did not stop: %s", type(exc).__name__)

    async def follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=FOLLOW_WAIT_MS)
            except Exception as exc:  # the broker away: keep serving, try again
                log.warning("model-control: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if batches:
                before = self.state
                self.state = _fold(self.state, batches)
                if self.state != before:
                    self._rebuild()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def _rebuild(self) -> None:
        """A new snapshot from the state; a version that fails to load is refused."""
        current = self.holder.serving()
        champion = self._scorer(CHAMPION, self.state.champion, current.champion)
        challenger = None
        if self.state.challenger is not None:
            challenger = self._scorer(CHALLENGER, self.state.challenger, current.challenger)
        if challenger is not None and challenger.version == champion.version:
            challenger = None  # promoted: it no longer shadows itself
        serving = Serving(champion, challenger)
        if serving != current:
            log.info(
                "serving %s%s",
                _describe(champion),
                "" if challenger is None else f"; shadow {_describe(challenger)}",
            )
            self.holder.swap(serving)

    def _scorer(self, role: str, version: str | None, current: Any) -> Any:
        if version is None:
            base = current
        else:
            base = self._loaded.get(version)
            if base is None:
                try:
                    base = self._loaded[version] = load_version(self.settings.model_dir, version)
                except (TrialwatchError, OSError) as exc:
                    log.error("refused %s %s: %s", role, version, exc)
                    metrics.CONTROL_REJECTED.labels(role).inc()
                    base = current
        if base is None:
            return None
        calibrations = self.state.calibrations_of(base.version)
        if calibrations == base.calibrations:
            return base
        return base.with_calibrations(calibrations)


def _describe(scorer: Any) -> str:
    n = len(scorer.calibrations)
    return scorer.version + (f" with {n} trial calibration(s)" if n else "")


def write_calibration(model_dir: Path, cal: Calibration) -> Path:
    """The calibration artifact beside its model: <model>/calibrations/<trial>/<version>.json."""
    folder = Path(model_dir) / cal.model_version / "calibrations" / cal.trial_id
    folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(folder, f"{cal.version}.json", cal.to_json())
    return folder / f"{cal.version}.json"
