"""Prometheus metrics of the worker (served at GET /metrics).

A private registry, so tests and several apps in one process don't collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from trialwatch.models.pipeline import OUTCOME_LABELS

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_IN = Counter("trialwatch_events_in", "Visit events consumed", registry=REGISTRY)
OUTCOMES = Counter(
    "trialwatch_event_outcomes",
    "Where each consumed event ended: " + ", ".join(OUTCOME_LABELS),
    ["outcome"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "trialwatch_dead_lettered", "Events sent to the DLQ, by reason", ["reason"], registry=REGISTRY
)
ALERTS = Counter("trialwatch_alerts", "Alerts emitted, by tier", ["tier"], registry=REGISTRY)
PAGES = Counter(
    "trialwatch_pages", "Alerts that paged a coordinator, by tier", ["tier"], registry=REGISTRY
)
PAGES_OVER_BUDGET = Counter(
    "trialwatch_pages_over_budget",
    "HIGH alerts kept in the work-queue but not paged: the site's weekly budget was spent",
    registry=REGISTRY,
)
SITE_ALERTS = Counter(
    "trialwatch_site_alerts",
    "Site KRI status changes emitted, by status",
    ["status"],
    registry=REGISTRY,
)
ALERTS_SUPPRESSED = Counter(
    "trialwatch_alerts_suppressed",
    "Alerts not re-sent because their alert_id was already emitted",
    registry=REGISTRY,
)
REDIS_FALLBACK = Counter(
    "trialwatch_redis_fallback",
    "Redis operations served by the in-process fallback because Redis was unreachable",
    registry=REGISTRY,
)
REDIS_UP = Gauge("trialwatch_redis_up", "1 when Redis answers, 0 when degraded", registry=REGISTRY)
SCORE_LATENCY = Histogram(
    "trialwatch_scoring_seconds",
    "Time to process one micro-batch (decode to outputs sent and states written)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "trialwatch_batch_events",
    "Events per micro-batch of the scoring agent",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "trialwatch_consumer_lag",
    "Messages behind the high-water mark, per assigned partition",
    ["topic", "partition"],
    registry=REGISTRY,
)


PROGRESS: dict[str, float | int | None] = {"count": 0, "first": None, "last": None}


def tick(events: int = 1) -> None:
    """Events processed, and wall-clock times of the first and last (for benchmarks)."""
    import time

    now = time.time()
    if PROGRESS["first"] is None:
        PROGRESS["first"] = now
    PROGRESS["last"] = now
    PROGRESS["count"] += events


REALIZED = {
    name: Gauge(
        f"trialwatch_realized_{name}",
        f"Realized {text} of matured predictions over the sliding window, by model and trial",
        ["model_version", "trial"],
        registry=REGISTRY,
    )
    for name, text in (
        ("roc_auc", "ROC-AUC"),
        ("pr_auc", "PR-AUC"),
        ("brier", "Brier score"),
        ("calibration_in_the_large", "mean probability / realized rate"),
        ("calibration_slope", "calibration slope"),
        ("n", "count"),
        ("positives", "withdrawals among the"),
    )
}
MODEL_TEST_ROC_AUC = Gauge(
    "trialwatch_model_test_roc_auc",
    "ROC-AUC of the loaded model on its held-out test split (the model card)",
    ["model_version"],
    registry=REGISTRY,
)
MODEL_SERVING = Gauge(
    "trialwatch_model_serving",
    "1 for the model version this worker serves in a role (champion, challenger)",
    ["role", "model_version"],
    registry=REGISTRY,
)
CONTROL_REJECTED = Counter(
    "trialwatch_model_control_rejected",
    "Model-control records this worker refused (a version that failed validation)",
    ["slot"],
    registry=REGISTRY,
)
RECALIBRATIONS = Counter(
    "trialwatch_recalibrations",
    "Per-trial recalibrations this worker proposed, by result",
    ["result"],
    registry=REGISTRY,
)
DRIFT_PSI = Gauge(
    "trialwatch_drift_psi",
    "PSI of a feature (or the score) in this worker's window of a trial vs the training data",
    ["trial", "feature"],
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)


def outcome_counts() -> dict[str, int]:
    """Current outcome counters as a plain dict (for /health and tests)."""
    counts: dict[str, int] = {}
    for metric in OUTCOMES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["outcome"]] = int(sample.value)
    return counts
