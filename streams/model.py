"""The models a worker serves: a champion, an optional shadow challenger, swapped whole.

``Serving`` is an immutable snapshot; the scoring agent reads it once per
micro-batch, so an event is never scored by a mix of versions, and a swap
(``streams.control``) takes effect between two batches. One agent consumes all of
the worker's partitions in one sequence, so each partition switches at one offset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from trialwatch.models.exceptions import ArtifactError
from trialwatch.models.scorer import Scorer
from trialwatch.schemas.exceptions import TrialwatchError
from trialwatch.streams import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    champion: Scorer
    challenger: Scorer | None = None


def load_version(root: Path, version: str) -> Scorer:
    """Load and check an artifact version: complete files, the features this code
    computes, a model card, and smoke scores (``Scorer.smoke_check``)."""
    version_dir = Path(root) / version
    if not (version_dir / "model.txt").exists():
        raise ArtifactError(f"no model version {version} in {root}")
    scorer = Scorer(version_dir)
    if not scorer.card:
        raise ArtifactError(f"model {version} has no model_card.json")
    scorer.smoke_check()
    return scorer


class ModelHolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._serving: Serving | None = None
        self.error: str | None = None

    def get(self) -> Scorer:
        """The champion (loaded from LATEST on first use)."""
        return self.serving().champion

    def serving(self) -> Serving:
        if self._serving is None:
            try:
                scorer = Scorer.load(self.path)
            except (TrialwatchError, OSError) as exc:
                self.error = (
                    f"no usable model in {self.path} ({exc}); train one with "
                    f"`trialwatch train` or set TRIALWATCH_MODEL_DIR"
                )
                raise SystemExit(f"trialwatch: {self.error}") from None
            self.error = None
            log.info("model %s loaded from %s", scorer.version, self.path)
            self.swap(Serving(scorer))
        assert self._serving is not None
        return self._serving

    def swap(self, serving: Serving) -> None:
        old = self._serving
        self._serving = serving
        for role, scorer in (("champion", serving.champion), ("challenger", serving.challenger)):
            before = None if old is None else getattr(old, role)
            if before is not None and (scorer is None or before.version != scorer.version):
                metrics.MODEL_SERVING.labels(role, before.version).set(0)
            if scorer is not None:
                metrics.MODEL_SERVING.labels(role, scorer.version).set(1)
                test = (scorer.card.get("test_metrics") or {}).get("lightgbm") or {}
                if test.get("roc_auc") is not None:
                    metrics.MODEL_TEST_ROC_AUC.labels(scorer.version).set(test["roc_auc"])

    @property
    def loaded(self) -> Scorer | None:
        return None if self._serving is None else self._serving.champion
