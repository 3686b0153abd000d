"""The Faust worker class trialwatch runs (``Worker`` setting of the app)."""

from __future__ import annotations

import logging

import faust

from trialwatch.streams.lognoise import install_coordinator_noise_filter


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner, and without start-up ERROR noise.

    To spin once per log call, the spinner sets the ROOT logger to DEBUG: every
    ``log.debug`` in aiokafka and Faust then builds a LogRecord on the per-message
    path (about a tenth of the worker's time in a profile) only for the handlers
    to drop it. Without the spinner the root logger keeps the ``-l`` level.
    aiokafka's retried "coordinator not available" lookups are logged at INFO
    during start-up (see ``streams/lognoise.py``).
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        install_coordinator_noise_filter()
