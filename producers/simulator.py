"""A causal synthetic trial world: who drifts away, why, and what it cost.

Trials (phase, visit schedule, economics) run at sites; participants enrol with
attributes and a hidden frailty, then live through scheduled visits, adverse
events, ePRO questionnaires and coordinator contacts until they complete or
withdraw. Dropout is caused, not labelled: each participant has a daily hazard

    h(t) = base(phase) * exp(lp(t))

whose linear predictor ``lp`` has documented drivers (``HAZARD_EFFECTS``):
recent missed visits, consecutive misses, lateness, adverse events by grade in
the last 30 days, a serious AE, ePRO decline, unreached contacts, distance to
site, arm (placebo and control higher), phase, age (young and old higher), site
quality, and a latent engagement that also makes misses, lateness and poor ePRO
more likely, so observable signals precede dropout. Frailty is noise no model
sees. The hazard is piecewise constant between events, so the withdrawal time in
each gap is one exponential draw: no per-day loop, >1M events in seconds.

Targets for the simulated dropout (``TARGET_DROPOUT``), the share of randomised
participants who withdraw before completing:
- Median retention in publicly funded trials is about 89% (Walters SJ et al.,
  "Recruitment and retention of participants in randomised controlled trials:
  a review of trials funded and published by the United Kingdom Health
  Technology Assessment Programme", BMJ Open 2017;7:e015276), i.e. about 11%
  dropout for a typical trial, wide spread between trials.
- Long phase III trials commonly lose 30-40% of participants (industry
  analyses of dropout, e.g. the widely quoted ~30% average dropout across
  clinical trials; longer trials lose more).
- Phase I (short, healthy volunteers, paid) loses few; phase IV (observational
  follow-up) sits between II and III in our world. These two ranges are our
  assumptions, stated as such.

Ground truth kept for evaluation: the hazard in force after every event (the
oracle's input) and the value each participant actually delivered after each
event (``models.economics``), which is what CLV must predict.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from trialwatch.models.economics import PHASE_ECONOMICS, discount_factor
from trialwatch.schemas.contract import FIELDS, MS_PER_DAY

TARGET_DROPOUT: dict[str, tuple[float, float]] = {
    "I": (0.03, 0.15),
    "II": (0.10, 0.30),
    "III": (0.25, 0.42),
    "IV": (0.08, 0.30),
}

# Schedules per phase: planned visits, days between visits, +/- window days.
SCHEDULES: dict[str, tuple[int, int, int]] = {
    "I": (6, 14, 2),
    "II": (10, 21, 3),
    "III": (14, 28, 5),
    "IV": (8, 30, 7),
}
# Baseline daily hazard per phase (before the linear predictor).
BASE_HAZARD: dict[str, float] = {"I": 0.00017, "II": 0.00015, "III": 0.000062, "IV": 0.00013}

HAZARD_EFFECTS: dict[str, float] = {
    "missed_last3": 0.55,  # per missed visit among the last three
    "consecutive_missed": 0.35,  # per consecutive miss (on top)
    "late_days": 0.04,  # per day of mean lateness over the last three visits
    "ae_grade_30d": 0.22,  # per grade point of AEs in the last 30 days
    "serious_ae_30d": 0.6,
    "epro_decline": 0.03,  # per point the last ePRO is below the participant's first
    "unreached_30d": 0.35,  # per unreached contact attempt in the last 30 days
    "log_distance": 0.25,  # per unit of log(1 + km / 10)
    "placebo": 0.35,
    "control": 0.2,
    "young": 0.3,  # age < 30
    "old": 0.25,  # age >= 75
    "disengagement": 1.2,  # latent (1 - engagement); observed only through its effects
}
ARM_WEIGHTS = (("ACTIVE", 0.5), ("PLACEBO", 0.35), ("CONTROL", 0.15))
GRADE_WEIGHTS = ((1, 0.52), (2, 0.30), (3, 0.13), (4, 0.045), (5, 0.005))
WORLD_START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 42
    n_participants: int = 3_000
    n_trials: int = 12
    sites_per_trial: int = 5
    enrollment_days: int = 240
    phase_mix: tuple[tuple[str, float], ...] = (
        ("I", 0.12),
        ("II", 0.3),
        ("III", 0.43),
        ("IV", 0.15),
    )
    hazard_scale: float = 1.0  # baseline hazard multiplier
    # Shifts of the population and the protocol (1.0 / 0.0 / 0.85 = the worlds as they
    # always were, byte for byte): for evaluation on other worlds and domain randomization.
    ae_rate_scale: float = 1.0  # adverse-event rate multiplier
    visit_interval_scale: float = 1.0  # days between visits (and trial length) multiplier
    visit_count_scale: float = 1.0  # planned visits multiplier (visit burden)
    distance_scale: float = 1.0  # median distance to site multiplier
    age_shift: float = 0.0  # years added to every age (clipped to 18-95)
    engagement_mean: float = 0.85  # mean latent engagement at enrolment


SHIFT_PARAMETERS = (
    "hazard_scale", "ae_rate_scale", "visit_interval_scale", "visit_count_scale",
    "distance_scale", "age_shift", "engagement_mean",
)  # fmt: skip


PROFILES: dict[str, SimulationConfig] = {
    "demo": SimulationConfig(seed=7, n_participants=400, n_trials=6, enrollment_days=120),
    "quick": SimulationConfig(seed=42, n_participants=6_000, n_trials=16),
    "full": SimulationConfig(seed=2026, n_participants=40_000, n_trials=60, enrollment_days=365),
}


@dataclass(frozen=True)
class Trial:
    trial_id: str
    phase: str
    planned_visits: int
    interval_days: int
    window_days: int
    sites: tuple[tuple[str, float], ...]  # (site_id, quality effect on the hazard)


@dataclass
class SimulatedWorld:
    config: SimulationConfig
    trials: list[Trial]
    events: list[dict]
    hazard: np.ndarray  # daily hazard in force right after each event (0 after the end)
    days_left: np.ndarray  # days from the event to the participant's planned end
    remaining_value: np.ndarray  # value delivered after each event, discounted to it
    outcome: dict[str, str] = field(default_factory=dict)
    delivered_value: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

    def true_probability(self, horizon_days: float = 60) -> np.ndarray:
        """True P(withdraw within ``horizon_days``) after each event.

        Uses the hazard in force at that moment over min(horizon, days to the
        planned end): 1 - exp(-h * d). It ignores how the hazard will change
        later (future misses, AEs), so it is the oracle of what is knowable
        now with perfect sight of the hidden state. Terminal events get 0.
        """
        exposure = np.minimum(float(horizon_days), np.maximum(self.days_left, 0.0))
        return 1.0 - np.exp(-self.hazard * exposure)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for event in self.events:
            digest.update(json.dumps(event, sort_keys=True).encode())
        return digest.hexdigest()


def _choice(rng: random.Random, weighted: tuple[tuple, ...]):
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x <= 0:
            return value
    return weighted[-1][0]


def make_trials(config: SimulationConfig, rng: random.Random) -> list[Trial]:
    trials = []
    for t in range(config.n_trials):
        phase = _choice(rng, config.phase_mix)
        visits, interval, window = SCHEDULES[phase]
        visits = max(2, round(visits * config.visit_count_scale))
        interval = max(3, round(interval * config.visit_interval_scale))
        sites = tuple(
            (f"S{t:03d}-{s:02d}", rng.gauss(0.0, 0.25)) for s in range(config.sites_per_trial)
        )
        trials.append(Trial(f"T{t:03d}", phase, visits, interval, window, sites))
    return trials


def simulate(config: SimulationConfig) -> SimulatedWorld:
    """Simulate every participant; return the world's events in event-time order."""
    rng = random.Random(config.seed)
    trials = make_trials(config, rng)
    rows: list[tuple[int, str, int, dict, float, float, float]] = []
    outcome: dict[str, str] = {}
    delivered: dict[str, float] = {}
    for index in range(config.n_participants):
        trial = trials[index % len(trials)]
        participant = _Participant(config, trial, index)
        history = participant.live()
        outcome[participant.patient_id] = participant.end_type
        delivered[participant.patient_id] = participant.delivered
        rows.extend(history)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return SimulatedWorld(
        config=config,
        trials=trials,
        events=[r[3] for r in rows],
        hazard=np.array([r[4] for r in rows]),
        days_left=np.array([r[5] for r in rows]),
        remaining_value=np.array([r[6] for r in rows]),
        outcome=outcome,
        delivered_value=delivered,
    )


class _Participant:
    """One participant's life in the trial; the state the hazard reads."""

    def __init__(self, config: SimulationConfig, trial: Trial, index: int) -> None:
        self.rng = random.Random(config.seed * 1_000_003 + index)
        rng = self.rng
        self.config = config
        self.trial = trial
        self.patient_id = f"P{index:07d}"
        self.site_id, site_effect = trial.sites[rng.randrange(len(trial.sites))]
        age = rng.uniform(18, 55) if trial.phase == "I" else rng.uniform(25, 85)
        self.age = int(min(max(age + config.age_shift, 18.0), 95.0))
        self.sex = _choice(rng, (("F", 0.49), ("M", 0.49), ("X", 0.02)))
        self.arm = "ACTIVE" if trial.phase == "IV" else _choice(rng, ARM_WEIGHTS)
        self.distance_km = round(math.exp(rng.gauss(math.log(15 * config.distance_scale), 0.9)), 1)
        self.enrolled_at = WORLD_START_MS + int(rng.uniform(0, config.enrollment_days) * MS_PER_DAY)
        self.end_ms = self.enrolled_at + trial.planned_visits * trial.interval_days * MS_PER_DAY
        e = HAZARD_EFFECTS
        self.static_lp = (
            site_effect
            + e["log_distance"] * math.log1p(self.distance_km / 10)
            + (e["placebo"] if self.arm == "PLACEBO" else 0.0)
            + (e["control"] if self.arm == "CONTROL" else 0.0)
            + (e["young"] if self.age < 30 else 0.0)
            + (e["old"] if self.age >= 75 else 0.0)
            + rng.gauss(0.0, 0.3)  # frailty: real, and invisible to any model
        )
        self.base = BASE_HAZARD[trial.phase] * config.hazard_scale
        self.engagement = min(1.0, max(0.2, rng.gauss(config.engagement_mean, 0.12)))
        self.visits: list[tuple[int, bool, float]] = []  # (time, attended, late days)
        self.aes: list[tuple[int, int, bool]] = []
        self.epro_first: float | None = None
        self.epro_last: float | None = None
        self.contacts: list[tuple[int, bool]] = []
        self.events: list[list] = []  # [time, event, hazard right after it]
        self.end_type = "COMPLETED"
        self.delivered = 0.0

    # ------------------------------------------------------------ the hazard
    def hazard(self, now: int) -> float:
        e = HAZARD_EFFECTS
        last3 = self.visits[-3:]
        missed = sum(1 for _, attended, _ in last3 if not attended)
        consecutive = 0
        for _, attended, _ in reversed(self.visits):
            if attended:
                break
            consecutive += 1
        late = [late for _, attended, late in last3 if attended]
        since = now - 30 * MS_PER_DAY
        ae_grades = sum(g for t, g, _ in self.aes if t >= since)
        serious = any(s for t, _, s in self.aes if t >= since)
        unreached = sum(1 for t, reached in self.contacts if t >= since and not reached)
        decline = 0.0
        if self.epro_first is not None and self.epro_last is not None:
            decline = max(self.epro_first - self.epro_last, 0.0)
        lp = (
            self.static_lp
            + e["missed_last3"] * missed
            + e["consecutive_missed"] * max(consecutive - 1, 0)
            + e["late_days"] * (sum(late) / len(late) if late else 0.0)
            + e["ae_grade_30d"] * ae_grades
            + (e["serious_ae_30d"] if serious else 0.0)
            + e["epro_decline"] * decline
            + e["unreached_30d"] * unreached
            + e["disengagement"] * (1.0 - self.engagement)
        )
        return self.base * math.exp(min(lp, 6.0))

    # ------------------------------------------------------------- the story
    def _emit(self, when: int, kind: str, source: str, **fields) -> None:
        event = dict.fromkeys(FIELDS)
        event.update(
            event_id=f"{self.patient_id}-{len(self.events):04d}",
            patient_id=self.patient_id,
            trial_id=self.trial.trial_id,
            site_id=self.site_id,
            event_type=kind,
            event_time=when,
            source_system=source,
            **fields,
        )
        self.events.append([when, event, 0.0])

    def _drift(self, shock: float) -> None:
        rng = self.rng
        self.engagement = min(1.0, max(0.0, self.engagement + rng.gauss(-0.015, 0.05) - shock))

    def _planned(self) -> list[tuple[int, str]]:
        """Between-visit happenings (AEs, ePROs) for the whole schedule, in time order."""
        rng, trial = self.rng, self.trial
        happenings: list[tuple[int, str]] = []
        ae_rate = (0.012 if self.arm == "ACTIVE" else 0.007) * (1.4 if trial.phase == "I" else 1.0)
        ae_rate *= self.config.ae_rate_scale
        t = self.enrolled_at
        while True:
            t += int(rng.expovariate(ae_rate) * MS_PER_DAY)
            if t >= self.end_ms:
                break
            happenings.append((t, "AE"))
        t = self.enrolled_at
        while True:
            t += int(rng.uniform(11, 17) * MS_PER_DAY)
            if t >= self.end_ms:
                break
            happenings.append((t, "EPRO"))
        for k in range(1, trial.planned_visits + 1):
            happenings.append((self.enrolled_at + k * trial.interval_days * MS_PER_DAY, f"V{k}"))
        happenings.sort()
        return happenings

    def live(self) -> list[tuple[int, str, int, dict, float, float, float]]:
        rng, trial = self.rng, self.trial
        econ = PHASE_ECONOMICS[trial.phase]
        self._emit(
            self.enrolled_at, "ENROLLED", "CTMS",
            age=self.age, sex=self.sex, arm=self.arm, phase=trial.phase,
            distance_km=self.distance_km, planned_visits=trial.planned_visits,
            visit_interval_days=trial.interval_days, visit_window_days=trial.window_days,
        )  # fmt: skip
        self.events[-1][2] = self.hazard(self.enrolled_at)
        now = self.enrolled_at
        queue = self._planned()
        pending_contacts: list[int] = []
        ended = False
        i = 0
        while i < len(queue) and not ended:
            when, what = queue[i]
            if pending_contacts and pending_contacts[0] < when:
                when, what = pending_contacts.pop(0), "CONTACT"
            else:
                i += 1
            # Did they withdraw in the quiet gap before this happening?
            h = self.events[-1][2]
            gap_days = (when - now) / MS_PER_DAY
            wait = rng.expovariate(h) if h > 0 else math.inf
            if wait < gap_days:
                t = now + int(wait * MS_PER_DAY)
                self._emit(t, "WITHDRAWN", "CTMS", reason=_reason(rng))
                self.end_type = "WITHDRAWN"
                ended = True
                break
            now = when
            mark = len(self.events)
            ended = self._happen(when, what, pending_contacts, econ)
            if not ended:
                h_now = self.hazard(now)
                for row in self.events[mark:]:
                    row[2] = h_now
        if not ended:
            last = self.events[-1][0]
            self._emit(max(last, self.end_ms) + MS_PER_DAY, "COMPLETED", "CTMS")
        return self._rows(econ)

    def _happen(self, when: int, what: str, pending_contacts: list[int], econ) -> bool:
        """Apply one happening; True if it ended the participation (fatal AE)."""
        rng, _trial = self.rng, self.trial
        if what == "AE":
            grade = _choice(rng, GRADE_WEIGHTS)
            serious = grade >= 3 and rng.random() < 0.5 + 0.15 * (grade - 3)
            self.aes.append((when, grade, serious))
            self._emit(when, "ADVERSE_EVENT", "EDC", ae_grade=grade, serious=serious)
            self._drift(0.03 * grade)
            if grade == 5:
                self._emit(when + MS_PER_DAY, "WITHDRAWN", "CTMS", reason="fatal adverse event")
                self.end_type = "WITHDRAWN"
                return True
        elif what == "EPRO":
            if rng.random() < 0.35 + 0.6 * self.engagement:
                burden = sum(g for t, g, _ in self.aes if t >= when - 30 * MS_PER_DAY)
                score = 45 + 45 * self.engagement - 3.0 * burden + rng.gauss(0, 6)
                score = round(min(100.0, max(0.0, score)), 1)
                self.epro_first = score if self.epro_first is None else self.epro_first
                self.epro_last = score
                self._emit(when, "EPRO_SUBMITTED", "EPRO", epro_score=score)
        elif what == "CONTACT":
            reached = rng.random() < 0.25 + 0.7 * self.engagement
            self.contacts.append((when, reached))
            self._emit(when, "CONTACT_ATTEMPT", "CTMS", reached=reached)
            self._drift(-0.05 if reached else 0.03)
        else:
            self._visit(when, int(what[1:]), pending_contacts, econ)
        return False

    def _visit(self, scheduled: int, number: int, pending_contacts: list[int], econ) -> None:
        rng, trial = self.rng, self.trial
        disengaged = 1.0 - self.engagement
        p_miss = 1 / (
            1 + math.exp(-(-3.2 + 4.0 * disengaged + 0.25 * math.log1p(self.distance_km / 10)))
        )
        if rng.random() < p_miss:
            when = scheduled + trial.window_days * MS_PER_DAY
            self.visits.append((when, False, 0.0))
            self._emit(when, "VISIT_MISSED", "EDC", visit_number=number, scheduled_time=scheduled)
            self._drift(0.06)
            first_call = when + int(rng.uniform(1, 3) * MS_PER_DAY)
            pending_contacts.append(first_call)
            if rng.random() < 0.5:
                pending_contacts.append(first_call + int(rng.uniform(2, 5) * MS_PER_DAY))
            pending_contacts.sort()
            return
        late_days = max(0.0, rng.gauss(-1.0, 1.5) + rng.expovariate(1.0) * 6 * disengaged)
        when = scheduled + int(late_days * MS_PER_DAY)
        self.visits.append((when, True, late_days))
        self._emit(when, "VISIT_COMPLETED", "EDC", visit_number=number, scheduled_time=scheduled)
        self._drift(-0.01)

    def _rows(self, econ) -> list[tuple]:
        """Attach ground truth: hazard after each event, days left, value delivered after it."""
        events = sorted(self.events, key=lambda row: row[0])  # emission order is not time order
        values = [0.0] * len(events)
        for j, (_when, event, _) in enumerate(events):
            if event["event_type"] == "VISIT_COMPLETED":
                values[j] = econ.visit_value
            elif event["event_type"] == "COMPLETED":
                values[j] = econ.completion_value
        self.delivered = sum(values)
        remaining = [0.0] * len(events)
        for i in range(len(events) - 2, -1, -1):
            t_i, t_next = events[i][0], events[i + 1][0]
            step = discount_factor((t_next - t_i) / MS_PER_DAY, econ.annual_discount_rate)
            remaining[i] = step * (values[i + 1] + remaining[i + 1])
        rows = []
        for i, (when, event, hazard) in enumerate(events):
            days_left = (self.end_ms - when) / MS_PER_DAY
            rows.append((when, self.patient_id, i, event, hazard, days_left, remaining[i]))
        return rows


def _reason(rng: random.Random) -> str:
    return _choice(
        rng,
        (
            ("lost to follow-up", 0.3),
            ("withdrew consent", 0.3),
            ("travel burden", 0.15),
            ("adverse events", 0.15),
            ("relocation", 0.1),
        ),
    )
