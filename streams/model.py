"""The model the worker scores with: loaded once, shared by agents and views."""

from __future__ import annotations

import logging
from pathlib import Path

from trialwatch.models.scorer import Scorer
from trialwatch.schemas.exceptions import TrialwatchError
from trialwatch.streams import metrics

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._scorer: Scorer | None = None
        self.error: str | None = None

    def get(self) -> Scorer:
        if self._scorer is None:
            try:
                self._scorer = Scorer.load(self.path)
            except (TrialwatchError, OSError) as exc:
                self.error = (
                    f"no usable model in {self.path} ({exc}); train one with "
                    f"`trialwatch train` or set TRIALWATCH_MODEL_DIR"
                )
                raise SystemExit(f"trialwatch: {self.error}") from None
            self.error = None
            log.info("model %s loaded from %s", self._scorer.version, self.path)
            test = (self._scorer.card.get("test_metrics") or {}).get("lightgbm") or {}
            if test.get("roc_auc") is not None:
                metrics.MODEL_TEST_ROC_AUC.labels(self._scorer.version).set(test["roc_auc"])
        return self._scorer

    @property
    def loaded(self) -> Scorer | None:
        return self._scorer
