"""Keep aiokafka's benign start-up complaint about the group coordinator off ERROR.

While a consumer group is new (or the broker has just started), Kafka has not
elected the group's coordinator yet and answers the lookup with
GROUP_COORDINATOR_NOT_AVAILABLE. aiokafka retries on its own but logs every
attempt at ERROR ("Group Coordinator Request failed: ..."), so a healthy worker,
``trialwatch alerts`` or the demo would start with an ERROR line. This filter
logs those lookups at INFO for a grace period after the first one; if the
coordinator is still missing after that, they are errors again. Every other
record passes unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiokafka.errors import GroupCoordinatorNotAvailableError

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
LOOKUP_FAILED = "Group Coordinator Request failed: %s"


class CoordinatorStartupNoise(logging.Filter):
    """Demotes "coordinator not available yet" to INFO for ``grace_s`` seconds."""

    def __init__(self, grace_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.grace_s = grace_s
        self.clock = clock
        self.first_seen: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._is_coordinator_not_available(record):
            return True
        now = self.clock()
        if self.first_seen is None:
            self.first_seen = now
        if now - self.first_seen > self.grace_s:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        # the logger let the record through as an ERROR; as INFO it may be below its level
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)

    @staticmethod
    def _is_coordinator_not_available(record: logging.LogRecord) -> bool:
        return (
            record.levelno >= logging.ERROR
            and record.msg == LOOKUP_FAILED
            and isinstance(record.args, tuple)
            and len(record.args) == 1
            and isinstance(record.args[0], GroupCoordinatorNotAvailableError)
        )


def install_coordinator_noise_filter() -> None:
    """Attach the filter to aiokafka's coordinator logger, once per process."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, CoordinatorStartupNoise) for f in logger.filters):
        logger.addFilter(CoordinatorStartupNoise())
