"""The worker's per-message logic, in process, through the ``Outputs`` seam.

A real trained scorer and real Avro bytes go in; the outputs, the cache and the
table are recording fakes that write every call into one ordered log, so the tests
see what was sent, with what, and in which order relative to the state write.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.models.factories import DAY, T0, history_factory
from tests.schemas.factories import event_factory
from trialwatch.models.alerts import AlertPolicy
from trialwatch.models.exceptions import ModelError
from trialwatch.models.pipeline import OUTCOME_LABELS, StepResult, step
from trialwatch.models.scorer import Scorer
from trialwatch.models.state import PatientState
from trialwatch.schemas import codec, registry
from trialwatch.schemas.exceptions import DecodeError
from trialwatch.streams.cache import Claim, RiskCache
from trialwatch.streams.processing import EventProcessor, Message, Outputs

PATIENT = "P1"
KEY = PATIENT.encode()
POLICY = AlertPolicy()


class FakeCache:
    """RiskCache's contract in memory: a two-step alert claim and the latest scores.

    ``claims[alert_id]`` holds what Redis would: ``pending:<wall ms>`` or ``sent``.
    """

    def __init__(self, log: list[tuple], claims: dict[str, str] | None = None) -> None:
        self.log = log
        self.claims: dict[str, str] = dict(claims or {})
        self.scores: dict[str, dict] = {}

    async def claim_alert(self, alert_id: str, now_ms: int | None = None) -> Claim:
        self.log.append(("claim_alert", alert_id))
        stored = self.claims.get(alert_id)
        if stored == "sent":
            return Claim(send=False)
        if stored is None:
            now_ms = int(time.time() * 1000) if now_ms is None else now_ms
            self.claims[alert_id] = f"pending:{now_ms}"
            return Claim(send=True)
        return Claim(send=True, pending_since_ms=int(stored.partition(":")[2]))

    async def mark_alert_sent(self, alert_id: str) -> None:
        self.log.append(("mark_alert_sent", alert_id))
        self.claims[alert_id] = "sent"

    def put_score(self, score: dict) -> None:
        self.log.append(("put_score", score["event_id"]))
        self.scores[score["patient_id"]] = score


class Recorder:
    """The topics and the table: every call lands in ``log``, in order."""

    def __init__(self, log: list[tuple], on_topic: set[str] | None = None) -> None:
        self.log = log
        self.states: dict[bytes, PatientState] = {}
        self.on_topic = on_topic or set()
        self.broken_state: PatientState | None = None  # what get_state returns, if set

    async def send_score(self, key: bytes, score: dict) -> None:
        self.log.append(("send_score", key, score))

    async def send_alert(self, key: bytes, alert: dict) -> None:
        self.log.append(("send_alert", key, alert))

    async def send_dead_letter(self, key: bytes | None, value: bytes, headers: dict) -> None:
        self.log.append(("send_dead_letter", key, value, headers))

    def get_state(self, key: bytes) -> PatientState | None:
        return self.broken_state or self.states.get(key)

    def set_state(self, key: bytes, state: PatientState) -> None:
        self.log.append(("set_state", key, state))
        self.states[key] = state

    async def alert_published(self, alert_id: str, since_ms: int) -> bool:
        self.log.append(("alert_published", alert_id, since_ms))
        return alert_id in self.on_topic

    def outputs(self) -> Outputs:
        return Outputs(
            send_score=self.send_score,
            send_alert=self.send_alert,
            send_dead_letter=self.send_dead_letter,
            get_state=self.get_state,
            set_state=self.set_state,
            alert_published=self.alert_published,
        )


@dataclasses.dataclass
class Worker:
    processor: EventProcessor
    out: Recorder
    cache: FakeCache
    log: list[tuple]

    async def feed(self, events: list[dict], key: bytes | None = KEY) -> list[str]:
        return [await self.processor.process(key, codec.encode(e), "test") for e in events]

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.log]


@pytest.fixture(scope="module")
def scorer(quick_model_dir) -> Scorer:
    return Scorer.load(quick_model_dir)


@pytest.fixture
def worker(scorer: Scorer) -> Worker:
    return make_worker(scorer)


def make_worker(
    scorer: Scorer, claims: dict[str, str] | None = None, on_topic: set[str] | None = None
) -> Worker:
    log: list[tuple] = []
    out, cache = Recorder(log, on_topic), FakeCache(log, claims)
    return Worker(EventProcessor(scorer, cache, out.outputs(), POLICY), out, cache, log)


def expected_steps(scorer: Scorer, events: list[dict]) -> list[StepResult]:
    """What ``models.pipeline.step`` makes of the history: the processor must send it."""
    state, results = None, []
    for event in events:
        result = step(state, event, scorer, POLICY)
        state = result.state
        results.append(result)
    return results


@pytest.fixture(scope="module")
def history() -> list[dict]:
    return history_factory(PATIENT, misses=2)


@pytest.fixture(scope="module")
def first_alert(scorer: Scorer, history: list[dict]) -> int:
    """Index of the first event of ``history`` that raises an alert."""
    alerting = [i for i, r in enumerate(expected_steps(scorer, history)) if r.alert]
    assert alerting, "the history should raise an alert with the quick model"
    return alerting[0]


def later(n: int, kind: str, days: float, **fields: Any) -> dict:
    """An event of the history's patient, ``days`` after its enrolment."""
    return event_factory(
        kind, event_id=f"{PATIENT}-{n:03d}", patient_id=PATIENT, trial_id="T1", site_id="S1",
        event_time=T0 + int(days * DAY), **fields,
    )  # fmt: skip


def test_the_fake_cache_has_risk_caches_methods():
    for name in ("claim_alert", "mark_alert_sent", "put_score"):
        real, fake = getattr(RiskCache, name), getattr(FakeCache, name)
        assert inspect.iscoroutinefunction(real) == inspect.iscoroutinefunction(fake), name
        params = [(p.name, p.kind, p.default) for p in inspect.signature(real).parameters.values()]
        assert params == [
            (p.name, p.kind, p.default) for p in inspect.signature(fake).parameters.values()
        ], name


# ------------------------------------------------------------------ outcomes
async def test_a_history_is_scored_and_sends_exactly_what_step_makes(worker, scorer, history):
    outcomes = await worker.feed(history)
    expected = expected_steps(scorer, history)
    assert outcomes == ["scored"] * len(history)
    sent = [entry[2] for entry in worker.log if entry[0] == "send_score"]
    assert sent == [r.score for r in expected]
    alerts = [entry[2] for entry in worker.log if entry[0] == "send_alert"]
    assert alerts == [r.alert for r in expected if r.alert] and alerts
    assert all(entry[1] == KEY for entry in worker.log if entry[0].startswith("send_"))
    assert worker.out.states[KEY] == expected[-1].state
    assert worker.cache.scores[PATIENT] == expected[-1].score


async def test_every_outcome_label(worker, history):
    outcomes = await worker.feed(history[:3])  # scored
    outcomes += await worker.feed([history[1]])  # an older duplicate
    outcomes += await worker.feed([later(900, "WITHDRAWN", 100)])  # ended
    outcomes += await worker.feed([later(901, "CONTACT_ATTEMPT", 101, reached=True)])
    outcomes.append(await worker.processor.process(KEY, b"not avro", "test"))
    assert outcomes == ["scored"] * 3 + ["duplicate", "ended", "after_end", "dead_lettered"]
    assert set(outcomes) == set(OUTCOME_LABELS)


async def test_a_terminal_event_writes_the_state_and_sends_no_score(worker, history):
    await worker.feed(history)
    worker.log.clear()
    assert await worker.feed([later(900, "WITHDRAWN", 200)]) == ["ended"]
    assert worker.kinds() == ["set_state"]
    assert worker.out.states[KEY].ended and worker.out.states[KEY].end_type == "WITHDRAWN"
    worker.log.clear()
    assert await worker.feed([later(901, "VISIT_MISSED", 210, visit_number=7,
                                    scheduled_time=T0 + 205 * DAY)]) == ["after_end"]  # fmt: skip
    assert worker.kinds() == ["set_state"]
    assert worker.out.states[KEY].n_after_end == 1


async def test_an_older_duplicate_sends_and_writes_nothing(worker, history):
    await worker.feed(history)
    state = worker.out.states[KEY]
    worker.log.clear()
    assert await worker.feed(history[:-1]) == ["duplicate"] * (len(history) - 1)
    assert worker.log == []
    assert worker.out.states[KEY] is state


async def test_an_event_without_a_key_is_scored(worker, history):
    assert await worker.feed(history[:2], key=None) == ["scored", "scored"]
    assert worker.kinds().count("send_score") == 2


# --------------------------------------------------------------------- order
async def test_outputs_are_sent_before_the_state_is_written(worker, scorer, history):
    for event, expected in zip(history, expected_steps(scorer, history), strict=True):
        worker.log.clear()
        assert await worker.feed([event]) == ["scored"]
        calls = ["send_score", "put_score"]
        if expected.alert:
            calls += ["claim_alert", "send_alert", "mark_alert_sent"]
        assert worker.kinds() == [*calls, "set_state"]
        assert worker.log[-1] == ("set_state", KEY, expected.state)
    assert any(r.alert for r in expected_steps(scorer, history))


async def test_a_redelivered_latest_event_resends_its_score_only(worker, scorer, history):
    steps = expected_steps(scorer, history)
    # The longest prefix whose last event is scored and raises no alert.
    end = max(i for i, r in enumerate(steps) if r.score is not None and r.alert is None) + 1
    events = history[:end]
    await worker.feed(events)
    original = [e[2] for e in worker.log if e[0] == "send_score"][-1]
    state = worker.out.states[KEY]
    worker.log.clear()
    assert await worker.feed([events[-1]]) == ["duplicate"]
    assert worker.log == [("send_score", KEY, original)]  # no state write, no new claim
    assert worker.out.states[KEY] is state


async def test_a_redelivered_latest_alerting_event_resends_score_and_alert(
    scorer, history, first_alert
):
    """The state is durable but the outputs never left: the claim was lost with them."""
    events = history[: first_alert + 1]
    before = make_worker(scorer)
    await before.feed(events)
    sent = [e for e in before.log if e[0] in ("send_score", "send_alert")][-2:]
    after = make_worker(scorer)  # a new worker: the table survived, the claim did not
    after.out.states = dict(before.out.states)
    assert await after.feed(events[-1:]) == ["duplicate"]
    alert_id = sent[1][2]["alert_id"]
    assert after.log == [
        sent[0],
        ("claim_alert", alert_id),
        sent[1],
        ("mark_alert_sent", alert_id),
    ]
    # The same re-delivery with the claim already marked sent re-sends the score only.
    after.log.clear()
    assert await after.feed(events[-1:]) == ["duplicate"]
    assert after.log == [sent[0], ("claim_alert", alert_id)]


# --------------------------------------------------------------- alert claims
@pytest.mark.parametrize(
    ("stored", "on_topic", "calls", "final"),
    [
        (None, False, ["claim_alert", "send_alert", "mark_alert_sent"], "sent"),
        ("sent", False, ["claim_alert"], "sent"),
        ("pending:1234", True, ["claim_alert", "alert_published", "mark_alert_sent"], "sent"),
        (
            "pending:1234",
            False,
            ["claim_alert", "alert_published", "send_alert", "mark_alert_sent"],
            "sent",
        ),
    ],
    ids=["new-claim", "already-sent", "pending-on-topic", "pending-missing"],
)
async def test_each_alert_claim_path(scorer, history, first_alert, stored, on_topic, calls, final):
    alert = expected_steps(scorer, history)[first_alert].alert
    alert_id = alert["alert_id"]
    worker = make_worker(
        scorer,
        claims={alert_id: stored} if stored else None,
        on_topic={alert_id} if on_topic else None,
    )
    await worker.feed(history[:first_alert])
    worker.log.clear()
    assert await worker.feed([history[first_alert]]) == ["scored"]
    middle = worker.log[2:-1]  # between the score and the state write
    assert [entry[0] for entry in middle] == calls
    assert worker.kinds()[:2] == ["send_score", "put_score"] and worker.kinds()[-1] == "set_state"
    if "alert_published" in calls:
        assert ("alert_published", alert_id, 1234) in middle
    if "send_alert" in calls:
        assert ("send_alert", KEY, alert) in middle
    assert worker.cache.claims[alert_id] == final
    # Suppressed or not, the state remembers the alert, so its cooldown holds.
    assert worker.out.states[KEY].last_alert_tier == alert["tier"]


# ---------------------------------------------------------------- dead letter
VALID = later(1, "VISIT_MISSED", 30, visit_number=1, scheduled_time=T0 + 28 * DAY)


def _with_fingerprint(fingerprint: bytes) -> bytes:
    data = codec.encode(VALID)
    return data[:2] + fingerprint + data[10:]


def _corrupt_body() -> bytes:
    return codec.encode(VALID) + b"\x00"  # a trailing byte after the record


def _contract_violation() -> bytes:
    bad = later(1, "ADVERSE_EVENT", 3, ae_grade=7, serious=True)  # grade outside 1-5
    return codec.encode_with(bad, "VisitEvent", registry.current("VisitEvent").version)


# reason -> (Kafka key, message bytes, events fed before it)
DEAD_LETTERS: dict[str, tuple[bytes | None, Callable[[], bytes], int]] = {
    "bad_marker": (KEY, lambda: b"\x00\x01" + codec.encode(VALID)[2:], 0),
    "truncated": (KEY, lambda: codec.encode(VALID)[:-2], 0),
    "unknown_fingerprint": (KEY, lambda: _with_fingerprint(b"\xff" * 8), 0),
    "corrupt_body": (KEY, _corrupt_body, 0),
    "contract_violation": (KEY, _contract_violation, 0),
    "key_mismatch": (b"P2", lambda: codec.encode(VALID), 1),
    "not_enrolled": (KEY, lambda: codec.encode(VALID), 0),
    "invalid_event": (  # a second enrolment of an enrolled patient
        KEY,
        lambda: codec.encode(later(2, "ENROLLED", 5)),
        1,
    ),
}


def test_every_reason_the_processor_can_give_is_covered():
    decode_reasons = {cls.reason for cls in DecodeError.__subclasses__()}
    model_reasons = {"not_enrolled", "invalid_event"}  # what state.apply raises
    assert decode_reasons | model_reasons | {"key_mismatch"} == set(DEAD_LETTERS)
    assert {cls.reason for cls in ModelError.__subclasses__()} >= model_reasons


@pytest.mark.parametrize("reason", sorted(DEAD_LETTERS))
async def test_bad_input_reaches_the_dead_letter_topic_with_its_bytes(worker, history, reason):
    key, make_value, fed_before = DEAD_LETTERS[reason]
    value = make_value()
    await worker.feed(history[:fed_before])
    state = worker.out.states.get(KEY)
    worker.log.clear()
    assert await worker.processor.process(key, value, "visit-events[3]@42") == "dead_lettered"
    assert len(worker.log) == 1
    kind, sent_key, sent_value, headers = worker.log[0]
    assert (kind, sent_key, sent_value) == ("send_dead_letter", key, value)
    assert headers["reason"] == reason
    assert headers["origin"] == "visit-events[3]@42"
    assert headers["detail"]
    assert worker.out.states.get(KEY) is state  # nothing written


async def test_an_unexpected_error_is_dead_lettered_as_internal_error(worker, history):
    await worker.feed(history[:2])
    # A state the code cannot read (a bug, or a table written by other code)
    worker.out.broken_state = dataclasses.replace(worker.out.states[KEY], seen=None)
    worker.log.clear()
    value = codec.encode(history[2])
    assert await worker.processor.process(KEY, value, "o") == "dead_lettered"
    assert worker.log == [
        ("send_dead_letter", KEY, value, {"reason": "internal_error", "detail": "TypeError",
                                          "origin": "o"}),
    ]  # fmt: skip


# --------------------------------------------------------------- site deltas
def _log_site_deltas(worker: Worker) -> None:
    async def send_site_delta(key: bytes, delta: dict) -> None:
        worker.log.append(("send_site_delta", key, delta))

    worker.processor.out.send_site_delta = send_site_delta


async def test_a_site_delta_goes_out_before_the_state_write(worker, scorer, history):
    from trialwatch.models.kri import site_delta

    _log_site_deltas(worker)
    deltas = 0
    for event, expected in zip(history, expected_steps(scorer, history), strict=True):
        worker.log.clear()
        await worker.feed([event])
        delta = site_delta(expected.state, event)
        sent = [e for e in worker.log if e[0] == "send_site_delta"]
        if delta is None:
            assert sent == []
            continue
        site = f"{expected.state.trial_id}|{expected.state.site_id}".encode()
        assert sent == [("send_site_delta", site, delta)]
        assert worker.kinds()[-2:] == ["send_site_delta", "set_state"]
        deltas += 1
    assert deltas >= 3  # enrolment and visits at least


async def test_a_redelivered_latest_event_resends_its_site_delta(worker, history):
    _log_site_deltas(worker)
    await worker.feed(history)
    [first] = [e for e in worker.log if e[0] == "send_site_delta"][-1:]
    worker.log.clear()
    assert await worker.feed(history[-1:]) == ["duplicate"]
    assert [e for e in worker.log if e[0] == "send_site_delta"] == [first]
    worker.log.clear()
    assert await worker.feed(history[:-1]) == ["duplicate"] * (len(history) - 1)
    assert worker.log == []  # older duplicates: nothing, their sites have them


# ------------------------------------------------------------------- batches
def _interleaved(history: list[dict], patients: list[str]) -> list[tuple[bytes | None, bytes]]:
    """Several patients' copies of ``history``, interleaved in time order, plus a
    duplicate, an undecodable message and one keyed to the wrong patient."""
    events = []
    for n, pid in enumerate(patients):
        for e in history:
            events.append({**e, "patient_id": pid, "event_id": f"{pid}-{e['event_id']}",
                           "event_time": e["event_time"] + n * 3_600_000})  # fmt: skip
    events.sort(key=lambda e: e["event_time"])
    messages = [(e["patient_id"].encode(), codec.encode(e)) for e in events]
    messages.insert(5, messages[3])  # re-delivered
    messages.insert(8, (b"P-x", b"not avro"))
    messages.insert(11, (b"P-other", messages[9][1]))
    return messages


async def test_a_batch_sends_what_one_by_one_sends_and_writes_each_patient_once(scorer, history):
    messages = _interleaved(history, ["PA", "PB", "PC"])
    single = make_worker(scorer)
    one_by_one = [await single.processor.process(k, v, "o") for k, v in messages]
    batched = make_worker(scorer)
    msgs = [Message(k, v, "o") for k, v in messages]
    assert await batched.processor.process_batch(msgs) == one_by_one
    assert {"scored", "duplicate", "dead_lettered"} <= set(one_by_one)

    def sends(worker: Worker) -> list[tuple]:
        return [e for e in worker.log if e[0] != "set_state"]

    assert sends(batched) == sends(single)
    writes = [e for e in batched.log if e[0] == "set_state"]
    assert batched.log[-len(writes) :] == writes  # every write after every send
    assert sorted(e[1] for e in writes) == [b"PA", b"PB", b"PC"]
    assert batched.out.states == single.out.states


async def test_a_batch_hands_each_write_the_context_of_its_patients_last_message(scorer, history):
    written: list[tuple] = []
    worker = make_worker(scorer)
    worker.processor.out.set_states = written.extend
    messages = _interleaved(history[:4], ["PA", "PB"])
    last = {k: i for i, (k, _) in enumerate(messages) if k in (b"PA", b"PB")}
    await worker.processor.process_batch([Message(k, v, "o", context=i)
                                          for i, (k, v) in enumerate(messages)])  # fmt: skip
    assert {key: context for key, _, context in written} == last
    assert not [e for e in worker.log if e[0] == "set_state"]


async def test_a_bug_in_a_batch_dead_letters_only_the_event_it_trips_on(scorer, history):
    worker = make_worker(scorer)
    await worker.feed(history[:2])
    broken = dataclasses.replace(worker.out.states[KEY], seen=None)
    states = worker.out.states
    worker.processor.out.get_state = lambda key: broken if key == KEY else states.get(key)
    other = [{**e, "patient_id": "PB", "event_id": f"PB-{e['event_id']}"} for e in history[:3]]
    messages = [Message(KEY, codec.encode(history[2]), "o")]
    messages += [Message(b"PB", codec.encode(e), "o") for e in other]
    outcomes = await worker.processor.process_batch(messages)
    assert outcomes == ["dead_lettered", "scored", "scored", "scored"]
    [dead] = [e for e in worker.log if e[0] == "send_dead_letter"]
    assert dead[3]["reason"] == "internal_error"
    assert worker.out.states[b"PB"] == expected_steps(scorer, other)[-1].state


async def test_a_batch_counts_every_event_in_the_progress_the_benchmarks_read(scorer, history):
    from trialwatch.streams import metrics

    worker = make_worker(scorer)
    before = metrics.PROGRESS["count"]
    await worker.processor.process_batch([Message(KEY, codec.encode(e)) for e in history[:5]])
    assert metrics.PROGRESS["count"] - before == 5


async def test_a_batch_waits_for_every_delivery_before_its_first_state_write(scorer, history):
    worker = make_worker(scorer)

    async def delivered() -> None:
        worker.log.append(("delivered",))

    worker.processor.out.delivered = delivered
    messages = _interleaved(history[:4], ["PA", "PB"])
    await worker.processor.process_batch([Message(k, v, "o") for k, v in messages])
    kinds = worker.kinds()
    assert kinds.count("delivered") == 1
    assert kinds.index("delivered") == kinds.index("set_state") - 1
    assert all(kind == "set_state" for kind in kinds[kinds.index("delivered") + 1 :])
