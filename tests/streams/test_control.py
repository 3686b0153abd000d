"""Model control folding and the automatic recalibrator's decisions, in process."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest

from tests.models.test_recalibration import window_of
from trialwatch.models.recalibration import Calibration
from trialwatch.models.tiers import Tiers
from trialwatch.schemas import codec
from trialwatch.streams import control
from trialwatch.streams.recalibrator import BUSY_TICKS, AutoRecalibrator

TIERS = Tiers({"MEDIUM": 0.03, "HIGH": 0.1, "CRITICAL": 0.25}, {}, {})


def wire(record: dict) -> dict:
    """Through the Avro bytes the control topic carries."""
    return codec.decode(codec.encode(record, "ModelControl"), "ModelControl")


def test_the_newest_record_of_each_slot_wins_in_topic_order():
    cal = Calibration("v2", "T1", "T1.r1", 0.3, 0.9, TIERS)
    records = [
        control.control_record(
            control.CHAMPION, "promote", model_version="v2", previous_version="v1"
        ),
        control.control_record(control.CHALLENGER, "shadow", model_version="v3"),
        control.calibration_record(cal, "worker:w1"),
        control.control_record(control.CHALLENGER, "shadow", model_version=None),
    ]
    state = control.ControlState()
    for record in records:
        state = state.apply(wire(record))
    assert (state.champion, state.previous, state.challenger) == ("v2", "v1", None)
    assert state.calibrations_of("v2") == {"T1": cal}
    assert state.calibrations_of("v1") == {}
    back = state.apply(wire(control.control_record(
        control.CHAMPION, "rollback", model_version="v1", previous_version="v2")))  # fmt: skip
    assert (back.champion, back.previous) == ("v1", "v2")
    assert back.calibrations_of("v2") == {"T1": cal}  # kept for when v2 returns


def test_a_calibration_record_carries_the_whole_artifact():
    cal = Calibration("v2", "T1", "T1.r4", 0.3, 0.9, TIERS, {"before": {"n": 10}})
    record = wire(control.calibration_record(cal, "recalibrate"))
    assert record["slot"] == "calibration|v2|T1"
    assert Calibration.from_json(json.loads(record["calibration_json"])) == cal


@dataclass
class FakeScorer:
    version: str = "v1"
    calibrations: dict = field(default_factory=dict)
    path: object = None
    horizon_days: int = 60

    def served_version(self, trial_id: str) -> str:
        cal = self.calibrations.get(trial_id)
        return self.version if cal is None else f"{self.version}+{cal.version}"


@dataclass
class FakeServing:
    champion: FakeScorer


class FakeHolder:
    def __init__(self, scorer: FakeScorer, tmp_path) -> None:
        scorer.path = tmp_path / scorer.version
        self._serving = FakeServing(scorer)

    def serving(self) -> FakeServing:
        return self._serving


def recalibrator(tmp_path, caught_up: list[bool]):
    published: list[Calibration] = []

    async def publish(cal: Calibration) -> None:
        published.append(cal)

    holder = FakeHolder(FakeScorer(), tmp_path)
    return AutoRecalibrator(holder, publish, lambda: caught_up[0]), published, holder


def test_a_window_is_fitted_once_it_settles_while_the_worker_is_caught_up(tmp_path):
    caught_up = [False]
    auto, published, holder = recalibrator(tmp_path, caught_up)
    window = window_of(60_000, a=0.8, b=1.0)
    key = b"v1|T1"

    async def run() -> None:
        await auto.tick({key}, {key: window}.get)  # changing
        await auto.tick(set(), {key: window}.get)  # settled, but a backlog remains
        assert published == []
        await auto.tick({key}, {key: window}.get)
        caught_up[0] = True
        await auto.tick({key}, {key: window}.get)  # still changing
        assert published == []
        await auto.tick(set(), {key: window}.get)  # settled and caught up
        assert [c.version for c in published] == ["T1.r1"]
        await auto.tick({key}, {key: window}.get)
        await auto.tick(set(), {key: window}.get)  # published, not yet served: no second
        assert len(published) == 1

    asyncio.run(run())
    # Served now: the old window is no longer the trial's, the new one is judged afresh.
    holder.serving().champion.calibrations = {"T1": published[0]}
    assert asyncio.run(auto.consider(key, window)) is None
    assert auto.pending == {}


def test_a_busy_stream_is_fitted_after_busy_ticks_without_settling(tmp_path):
    auto, published, _ = recalibrator(tmp_path, [False])
    window = window_of(60_000, a=0.8, b=1.0)
    key = b"v1|T1"

    async def run() -> None:
        for _ in range(BUSY_TICKS - 1):
            await auto.tick({key}, {key: window}.get)
        assert published == []
        await auto.tick({key}, {key: window}.get)

    asyncio.run(run())
    assert len(published) == 1


def test_declined_counts_are_not_judged_again(tmp_path):
    auto, published, _ = recalibrator(tmp_path, [True])
    window = window_of(40_000, a=0.0, b=1.0)  # calibrated: declined
    assert asyncio.run(auto.consider(b"v1|T1", window)) is None
    assert auto.decided == {b"v1|T1": 40_000}
    assert asyncio.run(auto.consider(b"v1|T1", window)) is None
    assert published == []


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_the_auto_recalibrate_flag_is_checked(value):
    from trialwatch.streams.settings import load

    assert load({"TRIALWATCH_AUTO_RECALIBRATE": "0"}).auto_recalibrate is False
    assert load({}).auto_recalibrate is True
    with pytest.raises(SystemExit, match="TRIALWATCH_AUTO_RECALIBRATE"):
        load({"TRIALWATCH_AUTO_RECALIBRATE": value})


def test_a_version_is_validated_before_it_is_served(quick_model_dir, tmp_path):
    import shutil

    from trialwatch.models.exceptions import ArtifactError
    from trialwatch.streams.model import load_version

    assert load_version(quick_model_dir.parent, quick_model_dir.name).version
    broken = tmp_path / "broken"
    shutil.copytree(quick_model_dir, broken)
    cal = json.loads((broken / "calibration.json").read_text())
    cal["y"] = [float("nan")] * len(cal["y"])
    (broken / "calibration.json").write_text(json.dumps(cal))
    with pytest.raises(ArtifactError, match="outside"):
        load_version(tmp_path, "broken")
    uncarded = tmp_path / "uncarded"
    shutil.copytree(quick_model_dir, uncarded)
    (uncarded / "model_card.json").unlink()
    with pytest.raises(ArtifactError, match="model_card"):
        load_version(tmp_path, "uncarded")
    with pytest.raises(ArtifactError, match="no model version"):
        load_version(tmp_path, "absent")


class LostBrokerConsumer:
    """An aiokafka consumer whose broker went away: its stop() raises the
    CancelledError of aiokafka's own tasks (what the broker-restart test met)."""

    stopped = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        LostBrokerConsumer.stopped += 1
        raise asyncio.CancelledError


async def test_start_retries_when_a_failed_consumer_is_cancelled_while_stopping(
    monkeypatch, tmp_path
):
    from trialwatch.streams.settings import load

    attempts = []

    async def catch_up(consumer, s, state, timeout_s):
        attempts.append(consumer)
        if len(attempts) == 1:
            raise TimeoutError("could not read model-control to its end in 15 s")
        return state

    monkeypatch.setattr(control, "_consumer", lambda s: LostBrokerConsumer())
    monkeypatch.setattr(control, "_catch_up", catch_up)
    monkeypatch.setattr(control, "RETRY_S", 0.0)
    follower = control.ModelControl(load({}), FakeHolder(FakeScorer(), tmp_path))
    monkeypatch.setattr(follower, "_rebuild", lambda: None)
    LostBrokerConsumer.stopped = 0
    await asyncio.wait_for(follower.start(), 5.0)
    assert follower.ready.is_set() and len(attempts) == 2
    assert LostBrokerConsumer.stopped == 1  # the failed one, not the serving one


async def test_start_still_stops_when_its_task_is_cancelled(monkeypatch, tmp_path):
    from trialwatch.streams.settings import load

    async def never(consumer, s, state, timeout_s):
        raise TimeoutError("broker away")

    monkeypatch.setattr(control, "_consumer", lambda s: LostBrokerConsumer())
    monkeypatch.setattr(control, "_catch_up", never)
    monkeypatch.setattr(control, "RETRY_S", 0.05)
    follower = control.ModelControl(load({}), FakeHolder(FakeScorer(), tmp_path))
    task = asyncio.create_task(follower.start())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not follower.ready.is_set()
