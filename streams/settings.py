"""Configuration from the environment, with safe defaults for the dev stack.

One typed object, read once. ``models/`` never reads it: the stream passes
parameters down as arguments. ``repr`` masks secrets so settings can be logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from trialwatch.models.alerts import AlertPolicy

# Every variable the app reads (docker-compose.yml and the README are tested against it).
ENV_VARS: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TRIALWATCH_APP_ID": "trialwatch",
    "TRIALWATCH_TOPIC_PREFIX": "",
    "TRIALWATCH_PARTITIONS": "8",
    "TRIALWATCH_REPLICATION": "1",
    "TRIALWATCH_STANDBY_REPLICAS": "1",
    "TRIALWATCH_STORE": "rocksdb://",
    "TRIALWATCH_DATA_DIR": ".devstack/worker",
    "TRIALWATCH_MODEL_DIR": "artifacts",
    "TRIALWATCH_WEB_HOST": "127.0.0.1",
    "TRIALWATCH_WEB_PORT": "6066",
    "TRIALWATCH_ALERT_COOLDOWN_DAYS": "30",
    "TRIALWATCH_SCORE_CACHE_TTL_S": "604800",
    "TRIALWATCH_DEDUP_TTL_S": "2592000",
    "TRIALWATCH_AUTO_RECALIBRATE": "1",
    "TRIALWATCH_ALERT_BUDGET": "0",
    "TRIALWATCH_BATCH_MAX": "500",
    "TRIALWATCH_BATCH_MS": "20",
    "TRIALWATCH_STATE_CACHE": "200000",
    "TRIALWATCH_WEB_TOKEN": "",
    "TRIALWATCH_WEB_USER": "",
    "TRIALWATCH_WEB_PASSWORD": "",
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "",
    "KAFKA_SASL_USERNAME": "",
    "KAFKA_SASL_PASSWORD": "",
    "KAFKA_SSL_CAFILE": "",
    "KAFKA_SSL_CERTFILE": "",
    "KAFKA_SSL_KEYFILE": "",
    "KAFKA_SSL_KEY_PASSWORD": "",
    "REDIS_TLS_CAFILE": "",
}
SECRET_FIELDS = {
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "redis_url",
    "web_token",
    "web_password",
}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    redis_url: str
    app_id: str
    topic_prefix: str
    partitions: int
    replication: int
    standby_replicas: int
    store: str
    data_dir: Path
    model_dir: Path
    web_host: str
    web_port: int
    alert_cooldown_days: float
    score_cache_ttl_s: int
    dedup_ttl_s: int
    auto_recalibrate: bool
    alert_budget: int  # HIGH pages per site per event-time week; 0: no budget
    batch_max: int  # visit events per micro-batch of the scoring agent
    batch_ms: int  # the longest a consumed event waits for its batch to fill
    state_cache: int  # decoded patient states kept in memory per worker
    web_token: str
    web_user: str
    web_password: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_cafile: str
    kafka_ssl_certfile: str
    kafka_ssl_keyfile: str
    kafka_ssl_key_password: str
    redis_tls_cafile: str

    @property
    def alert_policy(self) -> AlertPolicy:
        """The one place the alert policy is built from configuration."""
        return AlertPolicy(cooldown_days=self.alert_cooldown_days)

    # Topic names: <prefix><name>, so several deployments (or tests) share a broker.
    @property
    def visit_events_topic(self) -> str:
        return f"{self.topic_prefix}visit-events"

    @property
    def risk_scores_topic(self) -> str:
        return f"{self.topic_prefix}risk-scores"

    @property
    def risk_alerts_topic(self) -> str:
        return f"{self.topic_prefix}risk-alerts"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}visit-events.dlq"

    @property
    def model_outcomes_topic(self) -> str:
        """Internal: matured predictions re-keyed by model version and trial."""
        return f"{self.topic_prefix}model-outcomes"

    @property
    def model_metrics_topic(self) -> str:
        return f"{self.topic_prefix}model-metrics"

    @property
    def shadow_scores_topic(self) -> str:
        """The shadow challenger's scores: same records, never alerts."""
        return f"{self.topic_prefix}risk-scores.shadow"

    @property
    def model_control_topic(self) -> str:
        """Compacted, one partition: what every worker serves (streams.control)."""
        return f"{self.topic_prefix}model-control"

    @property
    def site_deltas_topic(self) -> str:
        """Internal: the site-relevant effect of each event, keyed trial|site."""
        return f"{self.topic_prefix}site-deltas"

    @property
    def site_kris_topic(self) -> str:
        """Internal: each site's KRI numbers (absolute), keyed by trial."""
        return f"{self.topic_prefix}site-kris"

    @property
    def site_alerts_topic(self) -> str:
        """A site that turned red, or went back to green (models.kri)."""
        return f"{self.topic_prefix}site-alerts"

    @property
    def risk_pages_topic(self) -> str:
        """The alerts that page a coordinator: all CRITICAL, HIGH within the budget."""
        return f"{self.topic_prefix}risk-pages"

    @property
    def alert_actions_topic(self) -> str:
        """Coordinators' acknowledgements and assignments: the audit trail."""
        return f"{self.topic_prefix}alert-actions"

    @property
    def web_credentials_configured(self) -> bool:
        return bool(self.web_token or (self.web_user and self.web_password))

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value configured (what a log or a message must never show)."""
        found = [
            self.kafka_sasl_password,
            self.kafka_ssl_key_password,
            self.web_token,
            self.web_password,
        ]
        found += _url_secrets(self.redis_url)
        return tuple(v for v in found if v)

    @property
    def broker_url(self) -> str:
        hosts = [h.strip() for h in self.kafka_bootstrap_servers.split(",") if h.strip()]
        return ";".join(f"kafka://{h}" for h in hosts)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = _mask(f.name, str(value))
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def _mask(name: str, value: str) -> str:
    if name == "redis_url":
        return mask_url(value)
    return "***"


def mask_url(url: str) -> str:
    """``rediss://user:pass@host`` -> ``rediss://user:***@host``: the user names the
    account (useful in a message), the password never shows."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _url_secrets(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def load(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: ``os.environ``) with the documented defaults."""
    env = os.environ if env is None else env

    def get(name: str) -> str:
        return env.get(name, "") or ENV_VARS[name]

    try:
        settings = Settings(
            kafka_bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS"),
            redis_url=get("REDIS_URL"),
            app_id=get("TRIALWATCH_APP_ID"),
            topic_prefix=env.get("TRIALWATCH_TOPIC_PREFIX", ""),
            partitions=int(get("TRIALWATCH_PARTITIONS")),
            replication=int(get("TRIALWATCH_REPLICATION")),
            standby_replicas=int(get("TRIALWATCH_STANDBY_REPLICAS")),
            store=get("TRIALWATCH_STORE"),
            data_dir=Path(get("TRIALWATCH_DATA_DIR")),
            model_dir=Path(get("TRIALWATCH_MODEL_DIR")),
            web_host=get("TRIALWATCH_WEB_HOST"),
            web_port=int(get("TRIALWATCH_WEB_PORT")),
            alert_cooldown_days=float(get("TRIALWATCH_ALERT_COOLDOWN_DAYS")),
            score_cache_ttl_s=int(get("TRIALWATCH_SCORE_CACHE_TTL_S")),
            dedup_ttl_s=int(get("TRIALWATCH_DEDUP_TTL_S")),
            auto_recalibrate=_flag(
                "TRIALWATCH_AUTO_RECALIBRATE", get("TRIALWATCH_AUTO_RECALIBRATE")
            ),
            alert_budget=int(get("TRIALWATCH_ALERT_BUDGET")),
            batch_max=int(get("TRIALWATCH_BATCH_MAX")),
            batch_ms=int(get("TRIALWATCH_BATCH_MS")),
            state_cache=int(get("TRIALWATCH_STATE_CACHE")),
            web_token=env.get("TRIALWATCH_WEB_TOKEN", ""),
            web_user=env.get("TRIALWATCH_WEB_USER", ""),
            web_password=env.get("TRIALWATCH_WEB_PASSWORD", ""),
            kafka_security_protocol=get("KAFKA_SECURITY_PROTOCOL").upper(),
            kafka_sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", ""),
            kafka_sasl_username=env.get("KAFKA_SASL_USERNAME", ""),
            kafka_sasl_password=env.get("KAFKA_SASL_PASSWORD", ""),
            kafka_ssl_cafile=env.get("KAFKA_SSL_CAFILE", ""),
            kafka_ssl_certfile=env.get("KAFKA_SSL_CERTFILE", ""),
            kafka_ssl_keyfile=env.get("KAFKA_SSL_KEYFILE", ""),
            kafka_ssl_key_password=env.get("KAFKA_SSL_KEY_PASSWORD", ""),
            redis_tls_cafile=env.get("REDIS_TLS_CAFILE", ""),
        )
    except ValueError as exc:
        raise SystemExit(f"trialwatch: invalid configuration value: {exc}") from None
    problem = security_problem(settings)
    if problem:
        raise SystemExit(f"trialwatch: {problem}")
    return settings


def security_problem(s: Settings) -> str | None:
    """What is wrong with the Kafka/Redis security settings, as one line naming the
    variable; None when they are consistent. Checked before any connection, so a
    typo is one line at start-up rather than a broker's retry loop."""
    if s.kafka_security_protocol not in SECURITY_PROTOCOLS:
        return (
            f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    if s.kafka_uses_sasl:
        mechanism = s.kafka_sasl_mechanism or "PLAIN"
        if mechanism not in SASL_MECHANISMS:
            return f"KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
        for var, value in (
            ("KAFKA_SASL_USERNAME", s.kafka_sasl_username),
            ("KAFKA_SASL_PASSWORD", s.kafka_sasl_password),
        ):
            if not value:
                return f"{var} is empty but KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}"
    if bool(s.kafka_ssl_certfile) != bool(s.kafka_ssl_keyfile):
        return "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (mTLS): set both or neither"
    for var, path in (
        ("KAFKA_SSL_CAFILE", s.kafka_ssl_cafile),
        ("KAFKA_SSL_CERTFILE", s.kafka_ssl_certfile),
        ("KAFKA_SSL_KEYFILE", s.kafka_ssl_keyfile),
        ("REDIS_TLS_CAFILE", s.redis_tls_cafile),
    ):
        if path and not Path(path).is_file():
            return f"{var}={path} is not a readable file"
    if s.redis_tls_cafile and not s.redis_url.startswith("rediss://"):
        return "REDIS_TLS_CAFILE is set but REDIS_URL is not a rediss:// (TLS) URL"
    if bool(s.web_user) != bool(s.web_password):
        return "TRIALWATCH_WEB_USER and TRIALWATCH_WEB_PASSWORD go together: set both or neither"
    if s.alert_budget < 0:
        return f"TRIALWATCH_ALERT_BUDGET={s.alert_budget} must be 0 (no budget) or more"
    for var, value, least in (
        ("TRIALWATCH_BATCH_MAX", s.batch_max, 1),
        ("TRIALWATCH_BATCH_MS", s.batch_ms, 1),
        ("TRIALWATCH_STATE_CACHE", s.state_cache, 0),
    ):
        if value < least:
            return f"{var}={value} must be {least} or more"
    return None


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not one of 1/0, true/false, yes/no, on/off")
