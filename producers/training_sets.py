"""Simulated worlds as training input: the events, what they are, and the truth.

``models.training.train`` takes a ``TrainingSet`` and knows nothing of the
simulator; this is where a simulated world becomes one (the CLI composes
``simulate`` and ``train`` through it).
"""

from __future__ import annotations

from dataclasses import replace

from trialwatch.models.training import TrainingSet, Truth
from trialwatch.producers.simulator import PROFILES, SimulatedWorld, simulate


def world_training_set(world: SimulatedWorld, profile: str) -> TrainingSet:
    """A simulated world's events with its truth (true probabilities, value delivered)."""
    return TrainingSet(
        events=world.events,
        source={
            "generator": "trialwatch.producers.simulator",
            "profile": profile,
            "seed": world.seed,
            "fingerprint_sha256": world.fingerprint(),
        },
        truth=Truth(probability=world.true_probability, remaining_value=world.remaining_value),
    )


def profile_training_set(profile: str, seed: int | None = None) -> TrainingSet:
    """Simulate a named profile (optionally re-seeded) and wrap it for training."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    config = PROFILES[profile] if seed is None else replace(PROFILES[profile], seed=seed)
    return world_training_set(simulate(config), profile)
