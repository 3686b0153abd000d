"""aiokafka's "coordinator not available yet" is INFO during start-up; other errors stay.

The records go through aiokafka's real logger (the filter sits on it) to
pytest's log capture; only the clock is fake, to step past the grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    RequestTimedOutError,
)

from trialwatch.streams.lognoise import (
    COORDINATOR_LOGGER,
    CoordinatorStartupNoise,
    install_coordinator_noise_filter,
)
from trialwatch.streams.worker import Worker

log = logging.getLogger(COORDINATOR_LOGGER)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def no_filters() -> Iterator[None]:
    saved = list(log.filters)
    for f in saved:
        log.removeFilter(f)
    yield
    for f in list(log.filters):
        log.removeFilter(f)
    for f in saved:
        log.addFilter(f)


@pytest.fixture
def clock(no_filters) -> FakeClock:
    clock = FakeClock()
    log.addFilter(CoordinatorStartupNoise(grace_s=60, clock=clock))
    return clock


def coordinator_lookup_failed(error: Exception) -> None:
    """What aiokafka's group coordinator logs when a lookup fails (same call)."""
    log.error("Group Coordinator Request failed: %s", error)


def levels(caplog) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == COORDINATOR_LOGGER]


def test_coordinator_not_available_at_start_up_is_info(clock, caplog):
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    coordinator_lookup_failed(GroupCoordinatorNotAvailableError())
    clock.now += 30
    coordinator_lookup_failed(GroupCoordinatorNotAvailableError())
    assert levels(caplog) == ["INFO", "INFO"]
    assert "GroupCoordinatorNotAvailableError" in caplog.records[0].getMessage()


def test_at_the_default_warn_level_the_start_up_noise_is_not_shown(clock, caplog):
    caplog.set_level(logging.WARNING, logger=COORDINATOR_LOGGER)
    coordinator_lookup_failed(GroupCoordinatorNotAvailableError())
    assert levels(caplog) == []


def test_a_coordinator_still_missing_after_the_grace_period_is_an_error(clock, caplog):
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    coordinator_lookup_failed(GroupCoordinatorNotAvailableError())
    clock.now += 61
    coordinator_lookup_failed(GroupCoordinatorNotAvailableError())
    assert levels(caplog) == ["INFO", "ERROR"]


def test_other_errors_stay_errors(clock, caplog):
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    coordinator_lookup_failed(GroupAuthorizationFailedError())
    coordinator_lookup_failed(RequestTimedOutError())
    log.error("Error sending JoinGroup request: %s", GroupCoordinatorNotAvailableError())
    assert levels(caplog) == ["ERROR", "ERROR", "ERROR"]


def test_the_worker_installs_the_filter_once(no_filters):
    for _ in range(2):
        # a stand-in for the worker: the hook only sets its spinner
        Worker.on_setup_root_logger(SimpleNamespace(), logging.root, logging.WARNING)
    install_coordinator_noise_filter()
    assert [type(f) for f in log.filters] == [CoordinatorStartupNoise]
