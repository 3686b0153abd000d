"""PatientState and the pure transition ``apply(state, event) -> (state, outcome)``.

Bounded: histories are small rings ordered by EVENT time (the newest N kept),
plus counters, so a patient costs a few hundred bytes whatever their history.
Keeping "the newest N by event time" is order-independent, so events that
arrive out of order within the window give the same state as in order.

Idempotent: an event is a DUPLICATE when its id is among the ids of the newest
``SEEN_RING`` events, or when it is older than the high-water mark minus
``DEDUP_HORIZON_DAYS`` (older ids have left the ring; an event that late is
treated as a re-delivery, which is what replaying history produces). Applying an
event twice, or replaying a whole history, therefore changes nothing.

    >>> from trialwatch.models.state import apply, Outcome
    >>> e = {"event_id": "e1", "patient_id": "p", "trial_id": "t", "site_id": "s",
    ...      "event_type": "ENROLLED", "event_time": 1_700_000_000_000, "age": 50,
    ...      "sex": "F", "arm": "ACTIVE", "phase": "II", "distance_km": 5.0,
    ...      "planned_visits": 10, "visit_interval_days": 21}
    >>> s, outcome = apply(None, e)
    >>> outcome is Outcome.APPLIED, apply(s, e)[1] is Outcome.DUPLICATE
    (True, True)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields, make_dataclass, replace
from enum import Enum
from operator import attrgetter, itemgetter

from trialwatch.models.exceptions import InvalidEventError, NotEnrolledError
from trialwatch.schemas import codec, state_layout
from trialwatch.schemas.contract import EVENT_TYPES, MS_PER_DAY

SEEN_RING = 32
DEDUP_HORIZON_DAYS = 30
VISIT_RING = 8
AE_RING = 8
EPRO_RING = 6
CONTACT_RING = 8
DEFAULT_WINDOW_DAYS = 3
KNOWN = EVENT_TYPES  # the wire contract's event types


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    AFTER_END = "after_end"


@dataclass(frozen=True, slots=True)
class PatientState:
    patient_id: str
    trial_id: str
    site_id: str
    phase: str
    arm: str
    sex: str
    age: int
    distance_km: float
    planned_visits: int
    visit_interval_days: int
    visit_window_days: int
    enrolled_at: int
    last_event_time: int
    n_applied: int = 1
    n_after_end: int = 0
    completed_visits: int = 0
    missed_visits: int = 0
    resolved_visits: int = 0
    late_ms_sum: int = 0  # integer, so the sum does not depend on arrival order
    ae_count: int = 0
    ae_max_grade: int = 0
    epro_count: int = 0
    epro_first: float | None = None
    epro_first_at: int | None = None
    unreached_total: int = 0
    # rings, each sorted by time, newest last
    visits: tuple[tuple[int, int, int, float], ...] = ()  # (visit_no, time, attended, late)
    aes: tuple[tuple[int, int, int], ...] = ()  # (time, grade, serious)
    epros: tuple[tuple[int, float], ...] = ()  # (time, score)
    contacts: tuple[tuple[int, int], ...] = ()  # (time, reached)
    seen: tuple[tuple[int, int], ...] = ()  # (time, event-id hash)
    ended: bool = False
    end_type: str | None = None
    ended_at: int | None = None
    last_alert_tier: str | None = None
    last_alert_at: int | None = None
    # What re-emitting the latest event's outputs needs (see models.pipeline.step)
    last_event_hash: int | None = None
    last_alert_event_hash: int | None = None
    previous_alert_tier: str | None = None
    # Scores whose horizon has not matured yet (models.outcomes): (time, p, tier rank, version)
    open_predictions: tuple[tuple[int, float, int, str], ...] = ()


def event_hash(event_id: str) -> int:
    """Stable 63-bit hash of an event id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big") >> 1


def latest_key(event: dict) -> int:
    """Identity of an event for re-emitting its outputs: id, type and time must all
    match, so a corrupted copy that reuses an id never re-emits a different score."""
    return event_hash(f"{event['event_id']}|{event['event_type']}|{event['event_time']}")


def _ring(items: tuple, item: tuple, size: int, key=lambda r: r[0]) -> tuple:
    """Insert and keep the newest ``size`` by key: the same set for any arrival order."""
    merged = sorted((*items, item), key=key)
    return tuple(merged[-size:])


def _number(event: dict, name: str) -> float:
    value = event.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEventError(f"{event.get('event_type')} needs a number in {name!r}")
    if not math.isfinite(value):
        raise InvalidEventError(f"{name!r} is not finite")
    return value


def _enroll(event: dict) -> PatientState:
    for name in ("patient_id", "trial_id", "site_id", "phase", "arm", "sex"):
        if not event.get(name):
            raise InvalidEventError(f"ENROLLED needs {name!r}")
    t = int(_number(event, "event_time"))
    window = event.get("visit_window_days")
    return PatientState(
        patient_id=event["patient_id"],
        trial_id=event["trial_id"],
        site_id=event["site_id"],
        phase=event["phase"],
        arm=event["arm"],
        sex=event["sex"],
        age=int(_number(event, "age")),
        distance_km=float(_number(event, "distance_km")),
        planned_visits=int(_number(event, "planned_visits")),
        visit_interval_days=int(_number(event, "visit_interval_days")),
        visit_window_days=DEFAULT_WINDOW_DAYS if window is None else int(window),
        enrolled_at=t,
        last_event_time=t,
        seen=((t, event_hash(event["event_id"])),),
        last_event_hash=latest_key(event),
    )


def apply(state: PatientState | None, event: dict) -> tuple[PatientState, Outcome]:
    """The new state after ``event`` (the input is never modified) and what happened."""
    kind = event.get("event_type")
    if kind not in KNOWN:
        raise InvalidEventError(f"unknown event type {kind!r}")
    if not event.get("event_id"):
        raise InvalidEventError("event has no event_id")
    t = int(_number(event, "event_time"))
    if state is None:
        if kind != "ENROLLED":
            raise NotEnrolledError(f"{kind} for a patient who never enrolled")
        return _enroll(event), Outcome.APPLIED

    h = event_hash(event["event_id"])
    if any(seen_hash == h for _, seen_hash in state.seen) or (
        t < state.last_event_time - DEDUP_HORIZON_DAYS * MS_PER_DAY
    ):
        return state, Outcome.DUPLICATE
    seen = _ring(state.seen, (t, h), SEEN_RING)
    if state.ended:
        return replace(state, seen=seen, n_after_end=state.n_after_end + 1), Outcome.AFTER_END
    if kind == "ENROLLED":
        raise InvalidEventError("a second ENROLLED event for an enrolled patient")
    base = {
        "seen": seen,
        "last_event_time": max(state.last_event_time, t),
        "n_applied": state.n_applied + 1,
        "last_event_hash": latest_key(event),
    }
    return replace(state, **base, **_changes(state, event, kind, t)), Outcome.APPLIED


def _changes(s: PatientState, event: dict, kind: str, t: int) -> dict:
    if kind == "VISIT_COMPLETED" or kind == "VISIT_MISSED":
        number = int(_number(event, "visit_number"))
        scheduled = int(_number(event, "scheduled_time"))
        attended = kind == "VISIT_COMPLETED"
        late_ms = max(t - scheduled, 0) if attended else 0
        late = late_ms / MS_PER_DAY
        return {
            "visits": _ring(s.visits, (number, t, int(attended), late), VISIT_RING),
            "completed_visits": s.completed_visits + attended,
            "missed_visits": s.missed_visits + (not attended),
            "resolved_visits": max(s.resolved_visits, number),
            "late_ms_sum": s.late_ms_sum + late_ms,
        }
    if kind == "ADVERSE_EVENT":
        grade = int(_number(event, "ae_grade"))
        if not 1 <= grade <= 5:
            raise InvalidEventError(f"ae_grade {grade} outside 1-5")
        serious = int(bool(event.get("serious")))
        return {
            "aes": _ring(s.aes, (t, grade, serious), AE_RING),
            "ae_count": s.ae_count + 1,
            "ae_max_grade": max(s.ae_max_grade, grade),
        }
    if kind == "EPRO_SUBMITTED":
        score = float(_number(event, "epro_score"))
        first = s.epro_first_at is None or t < s.epro_first_at
        return {
            "epros": _ring(s.epros, (t, score), EPRO_RING),
            "epro_count": s.epro_count + 1,
            "epro_first": score if first else s.epro_first,
            "epro_first_at": t if first else s.epro_first_at,
        }
    if kind == "CONTACT_ATTEMPT":
        reached = event.get("reached")
        if not isinstance(reached, bool):
            raise InvalidEventError("CONTACT_ATTEMPT needs 'reached' true/false")
        return {
            "contacts": _ring(s.contacts, (t, int(reached)), CONTACT_RING),
            "unreached_total": s.unreached_total + (not reached),
        }
    # WITHDRAWN / COMPLETED
    return {"ended": True, "end_type": kind, "ended_at": t}


def set_open_predictions(fresh: PatientState, open_predictions: tuple) -> None:
    """Set the open predictions of a state that ``apply`` has just returned as APPLIED.

    ``apply`` builds a new object for every applied event and nobody holds it yet,
    so this is ``dataclasses.replace`` without its copy: replace costs about 26 us a
    call, and the per-event path would pay it on most events (models.pipeline).
    """
    object.__setattr__(fresh, "open_predictions", open_predictions)


def with_alert(state: PatientState, tier: str, at: int, key: int | None = None) -> PatientState:
    """The state after raising an alert; ``key`` is ``latest_key`` of the triggering event."""
    return replace(
        state,
        last_alert_tier=tier,
        last_alert_at=at,
        last_alert_event_hash=key,
        previous_alert_tier=state.last_alert_tier,
    )


# ----------------------------------------------------------- serialization
# Each ring is stored as parallel arrays of one primitive type (compact, fast Avro).
_RINGS: dict[str, tuple[tuple[str, type], ...]] = {
    "visits": (("visit_numbers", int), ("visit_times", int), ("visit_attended", int),
               ("visit_late_days", float)),
    "aes": (("ae_times", int), ("ae_grades", int), ("ae_serious", int)),
    "epros": (("epro_times", int), ("epro_scores", float)),
    "contacts": (("contact_times", int), ("contact_reached", int)),
    "seen": (("seen_times", int), ("seen_hashes", int)),
    "open_predictions": (("prediction_times", int), ("prediction_probabilities", float),
                         ("prediction_tiers", int), ("prediction_versions", str)),
}  # fmt: skip
_SCALARS = tuple(f.name for f in fields(PatientState) if f.name not in _RINGS)


def to_record(state: PatientState) -> dict:
    """A plain dict for ``schemas/patient_state.v2.avsc`` (the parallel-array form v1/v2
    values are read in; new values are written by ``encode_state``)."""
    record = {name: getattr(state, name) for name in _SCALARS}
    for ring, columns in _RINGS.items():
        items = getattr(state, ring)
        for i, (column, _cast) in enumerate(columns):
            record[column] = [item[i] for item in items]
    return record


def from_record(record: dict) -> PatientState:
    values = {name: record[name] for name in _SCALARS}
    for ring, columns in _RINGS.items():
        arrays = [[cast(v) for v in record[column]] for column, cast in columns]
        values[ring] = tuple(zip(*arrays, strict=True))
    return PatientState(**values)


# The table's byte layout (schemas.state_layout): v3 written, v1/v2 still read.
_LAYOUT_VALUES = attrgetter(*state_layout.FIELDS)
_IN_FIELD_ORDER = itemgetter(*(state_layout.FIELDS.index(f.name) for f in fields(PatientState)))
# PatientState's slots without the frozen __setattr__: its generated __init__ stores
# each field directly, where a frozen dataclass's calls object.__setattr__ per field
# (40 of them: about 20 µs of a decode on a busy 2-core machine, 3 µs this way).
# A built instance then becomes a PatientState by ``__class__`` assignment, which
# CPython refuses (TypeError) unless the two slot layouts are identical.
_Unfrozen = make_dataclass(
    "_Unfrozen",
    [(f.name, f.type) for f in fields(PatientState)],
    slots=True,
    eq=False,
    repr=False,
    match_args=False,
)


def encode_state(state: PatientState) -> bytes:
    """Single-object bytes of ``state`` in the current layout (``patient_state.v3``)."""
    return state_layout.encode(_LAYOUT_VALUES(state))


def decode_state(data: bytes) -> PatientState:
    """A PatientState from bytes of any version (v1/v2 through the v2 record form);
    bytes that are not one raise a ``DecodeError``."""
    writer = codec.writer_of(data, state_layout.NAME)
    if writer is state_layout.WRITER:
        built = _Unfrozen(*_IN_FIELD_ORDER(state_layout.decode_body(data)))
        built.__class__ = PatientState
        return built
    return from_record(codec.decode(data, state_layout.NAME, state_layout.LEGACY_READER))
