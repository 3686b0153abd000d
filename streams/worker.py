"""The Faust worker class trialwatch runs (``Worker`` setting of the app)."""

from __future__ import annotations

import logging

import faust


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    To spin once per log call, the spinner sets the ROOT logger to DEBUG: every
    ``log.debug`` in aiokafka and Faust then builds a LogRecord on the per-message
    path (about a tenth of the worker's time in a profile) only for the handlers
    to drop it. Without the spinner the root logger keeps the ``-l`` level.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
