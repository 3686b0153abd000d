"""Every client of ours against a secured broker (SASL_SSL, SCRAM, ACLs) and Redis
(TLS, ACL user): the stack of ``devstack/secure.py``, no mocks.

The worker, ``simulate``, ``replay``, ``alerts`` and the alert ledger all run as
the ``worker`` user; a client without credentials, with a wrong password or an
untrusted CA is refused in one line; a user without the group ACL is stopped
before its worker starts; nothing secret reaches a log, an endpoint or a message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from tests.integration.worker import Namespace, Worker, assert_nothing_leaks
from trialwatch.producers.files import write_jsonl
from trialwatch.producers.simulator import PROFILES, simulate
from trialwatch.schemas import codec
from trialwatch.schemas.contract import TERMINAL
from trialwatch.streams.admin import ensure_topics
from trialwatch.streams.ledger import AlertLedger
from trialwatch.streams.security import aiokafka_kwargs
from trialwatch.streams.settings import load

TRIALWATCH = str(Path(sys.executable).with_name("trialwatch"))
TERMINAL_OVERRIDES = ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass
class SecureNamespace(Namespace):
    """A test deployment on the secured stack, as one of its users."""

    stack: Any = None
    user: str = "worker"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **{k: v for k, v in super().env().items() if k not in TERMINAL_OVERRIDES},
            **self.stack.client_env(self.user),
            "TRIALWATCH_TOPIC_PREFIX": f"sec.{self.run_id}.",
            "TRIALWATCH_APP_ID": f"sec-{self.run_id}",
            **extra,
        }


def namespace(stack, model_dir: Path, root: Path, user: str = "worker") -> SecureNamespace:
    return SecureNamespace(
        stack.bootstrap, stack.redis_url(), model_dir, root, stack=stack, user=user
    )


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TRIALWATCH, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


async def read_all(kwargs: dict, topic: str, max_s: float = 60.0) -> list:
    """Every record of ``topic`` up to its end offsets, through the given settings."""
    consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or ()
            partitions = [TopicPartition(topic, p) for p in parts]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records, deadline = [], time.monotonic() + max_s
        unread = {tp for tp, end in ends.items() if end > 0}
        while unread and time.monotonic() < deadline:
            for tp, part in (await consumer.getmany(*unread, timeout_ms=300)).items():
                records.extend(r for r in part if r.offset < ends[tp])
            unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
        assert not unread, f"{topic} not read to its end in {max_s}s"
        return records
    finally:
        await consumer.stop()


def secrets_of(stack) -> list[str]:
    return list(stack.passwords.values())


@pytest.mark.timeout(900)  # a busy shared machine; about 3 minutes otherwise
def test_secured_end_to_end(secure_stack, quick_model_dir, private_tmp):
    tmp_path = private_tmp
    ns = namespace(secure_stack, quick_model_dir, tmp_path)
    s = ns.settings
    assert s.kafka_security_protocol == "SASL_SSL" and s.redis_url.startswith("rediss://")
    worker = Worker(ns, TRIALWATCH_ALERT_BUDGET="2").start()  # the budget's Lua runs too
    outputs: list[str] = []
    try:
        simulated = run_cli("simulate", "--profile", "demo", env=ns.env())
        outputs += [simulated.stdout, simulated.stderr]
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        n_simulated = len(simulate(PROFILES["demo"]).events)
        assert f"sent {n_simulated:,} events" in simulated.stderr

        extra = simulate(dataclasses.replace(PROFILES["demo"], seed=8))
        history = tmp_path / "history.jsonl"
        write_jsonl(extra.events[:300], history)
        replayed = run_cli("replay", str(history), env=ns.env())
        outputs += [replayed.stdout, replayed.stderr]
        assert replayed.returncode == 0, replayed.stderr[-2000:]
        assert "sent 300 events" in replayed.stderr

        worker.wait_outcomes(n_simulated + 300, timeout=400)
        status, health = worker.get("/health")
        assert (status, health["status"]) == (200, "ok"), health  # TLS Redis as the ACL user
        bodies = [json.dumps(health), json.dumps(worker.get("/model")[1])]
        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
            bodies.append(response.read().decode())
        for page in ("/dashboard", "/dashboard/model"):
            with urllib.request.urlopen(f"{worker.url}{page}", timeout=10) as response:
                bodies.append(response.read().decode())

        kwargs = aiokafka_kwargs(s)
        scores = asyncio.run(read_all(kwargs, s.risk_scores_topic))
        alerts = [codec.decode(r.value, "RiskAlert") for r in
                  asyncio.run(read_all(kwargs, s.risk_alerts_topic))]  # fmt: skip
        # Every score is of an input event that can be scored (not a withdrawal or a
        # completion); with every event done, nearly all of them are, replayed ones too.
        inputs = [*simulate(PROFILES["demo"]).events, *extra.events[:300]]
        scorable = {(e["patient_id"], e["event_id"]) for e in inputs
                    if e["event_type"] not in TERMINAL}  # fmt: skip
        scored = {(score["patient_id"], score["event_id"]) for score in
                  (codec.decode(r.value, "RiskScore") for r in scores)}  # fmt: skip
        assert scored <= scorable and len(scored) >= 0.9 * len(scorable)
        assert scored & {(e["patient_id"], e["event_id"]) for e in extra.events[:300]}
        assert alerts, "the demo world always raises alerts"

        tail = run_cli("alerts", "--json", "--from-beginning", "--limit", str(len(alerts)),
                       "--seconds", "60", env=ns.env())  # fmt: skip
        outputs += [tail.stdout, tail.stderr]
        assert tail.returncode == 0, tail.stderr[-2000:]
        tailed = [json.loads(line) for line in tail.stdout.splitlines() if line.startswith("{")]
        assert {a["alert_id"] for a in tailed} == {a["alert_id"] for a in alerts}

        async def ledger_answers() -> tuple[bool, bool]:
            ledger = AlertLedger(s.risk_alerts_topic, kwargs)
            try:
                return (
                    await ledger.contains(alerts[0]["alert_id"], since_ms=0),
                    await ledger.contains("no-such-alert", since_ms=0),
                )
            finally:
                await ledger.close()

        assert asyncio.run(ledger_answers()) == (True, False)

        cached = redis.Redis.from_url(s.redis_url, ssl_ca_certs=s.redis_tls_cafile)
        try:
            assert list(cached.scan_iter(f"{s.app_id}:score:*", count=1000))
            # The dashboard's projection and the page budget (a Lua script) as the ACL user
            assert list(cached.scan_iter(f"{s.app_id}:dash:traj:*", count=1000))
            assert list(cached.scan_iter(f"{s.app_id}:budget:*", count=1000))
            with pytest.raises(redis.exceptions.NoPermissionError):
                cached.get("someone-else:key")  # the ACL user sees its own keys only
        finally:
            cached.close()
    finally:
        worker.stop()

    # The log-grep check, on the secured run: the worker's log, the commands'
    # output and the endpoints' bodies hold no password, no patient data.
    assert_nothing_leaks(worker.log(), secrets_of(secure_stack), inputs)
    for refusal in ("projection not written", "alert budget unavailable", "NOPERM"):
        assert refusal not in worker.log(), refusal
    everything = "\n".join([*outputs, *bodies])
    for secret in secrets_of(secure_stack):
        assert secret not in everything


def one_line_failure(done: subprocess.CompletedProcess, stack) -> str:
    """The refusal a command printed: exactly one ``trialwatch:`` line, no traceback,
    no secret."""
    text = done.stdout + done.stderr
    assert done.returncode != 0, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    for secret in secrets_of(stack):
        assert secret not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def test_wrong_password_is_one_line_naming_the_setting(secure_stack, tmp_path):
    ns = namespace(secure_stack, tmp_path, tmp_path)
    env = ns.env(KAFKA_SASL_PASSWORD="not-the-password")
    line = one_line_failure(run_cli("worker", "-l", "info", env=env, timeout=120), secure_stack)
    assert line == (
        f"trialwatch: the broker at {secure_stack.bootstrap} refused "
        "KAFKA_SASL_USERNAME=worker (KAFKA_SASL_MECHANISM=SCRAM-SHA-512): "
        "authentication failed; check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    )
    assert "not-the-password" not in line


def test_worker_without_the_group_acl_fails_with_a_clear_line(secure_stack, tmp_path):
    ns = namespace(secure_stack, tmp_path, tmp_path, user="nogroup")
    done = run_cli("worker", "-l", "info", env=ns.env(), timeout=120)
    assert one_line_failure(done, secure_stack) == (
        f"trialwatch: the broker refused KAFKA_SASL_USERNAME=nogroup Describe/Read on "
        f"consumer group sec-{ns.run_id} (GroupAuthorizationFailedError): "
        "grant that user an ACL for it"
    )


def test_a_client_without_credentials_is_refused(secure_stack, tmp_path):
    ns = namespace(secure_stack, tmp_path, tmp_path)

    async def bare_client_starts(**kwargs) -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=secure_stack.bootstrap, request_timeout_ms=3000, **kwargs
        )
        try:
            await asyncio.wait_for(admin.start(), 15)
            return True
        except (KafkaConnectionError, TimeoutError):
            return False
        finally:
            await admin.close()

    import ssl

    tls_only = ssl.create_default_context(cafile=str(secure_stack.ca_file))
    assert not asyncio.run(bare_client_starts())
    assert not asyncio.run(bare_client_starts(security_protocol="SSL", ssl_context=tls_only))

    def refused(**env: str) -> str:
        settings = load({**ns.env(), **env})
        with pytest.raises(SystemExit) as exc:
            asyncio.run(ensure_topics(settings, timeout_s=15))
        return str(exc.value)

    where = secure_stack.bootstrap
    assert refused(KAFKA_SECURITY_PROTOCOL="SSL") == (
        f"trialwatch: the broker at {where} closed the connection: it expects other "
        "security than KAFKA_SECURITY_PROTOCOL=SSL (credentials missing? TLS?)"
    )
    untrusted = refused(KAFKA_SSL_CAFILE="")  # the system store does not know our CA
    assert untrusted.startswith(
        f"trialwatch: the broker at {where} has a certificate not trusted by "
        "KAFKA_SSL_CAFILE (the system CA store): "
    )
    with pytest.raises(SystemExit, match="KAFKA_SASL_PASSWORD is empty"):
        load({**ns.env(), "KAFKA_SASL_PASSWORD": ""})


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_every_sasl_mechanism_reaches_the_broker(secure_stack, tmp_path, mechanism):
    ns = namespace(secure_stack, tmp_path, tmp_path)
    settings = load(ns.env(KAFKA_SASL_MECHANISM=mechanism))
    created = asyncio.run(ensure_topics(settings, timeout_s=20, group=settings.app_id))
    assert settings.visit_events_topic in created


def test_the_broker_requires_a_client_certificate_from_its_ca(secure_stack, tmp_path):
    import trustme

    ours = namespace(secure_stack, tmp_path, tmp_path).env()
    assert ours["KAFKA_SSL_CERTFILE"]  # every other test of this module runs with mTLS
    assert asyncio.run(ensure_topics(load(ours), timeout_s=20))
    stranger = trustme.CA().issue_cert("localhost")  # signed by a CA the broker does not trust
    cert, key = tmp_path / "stranger.pem", tmp_path / "stranger.key"
    stranger.cert_chain_pems[0].write_to_path(str(cert))
    stranger.private_key_pem.write_to_path(str(key))
    for env in (
        {**ours, "KAFKA_SSL_CERTFILE": str(cert), "KAFKA_SSL_KEYFILE": str(key)},
        {**ours, "KAFKA_SSL_CERTFILE": "", "KAFKA_SSL_KEYFILE": ""},
    ):
        with pytest.raises(SystemExit) as exc:
            asyncio.run(ensure_topics(load(env), timeout_s=15))
        line = str(exc.value)
        assert line.startswith(f"trialwatch: the broker at {secure_stack.bootstrap} "), line
        assert "KAFKA_SSL_CERTFILE" in line, line
        assert "\n" not in line


def test_redis_refusals_name_the_setting_and_hide_the_password(secure_stack, tmp_path, caplog):
    from trialwatch.streams.cache import RiskCache
    from trialwatch.streams.security import redis_kwargs, redis_refusal_line

    good = load(namespace(secure_stack, Path("."), tmp_path).env())
    bad_url = good.redis_url.replace(secure_stack.passwords["worker"], "nope")
    wrong = load({**namespace(secure_stack, Path("."), tmp_path).env(), "REDIS_URL": bad_url})

    async def ping(s) -> bool:
        cache = RiskCache(s.redis_url, prefix=s.app_id, redis_kwargs=redis_kwargs(s),
                          describe=lambda exc: redis_refusal_line(exc, s))  # fmt: skip
        try:
            return await cache.ping()
        finally:
            await cache.close()

    assert asyncio.run(ping(good))
    caplog.set_level("WARNING", logger="trialwatch.streams.cache")
    assert not asyncio.run(ping(wrong))
    host = f"127.0.0.1:{secure_stack.redis_port}"
    assert f"Redis at rediss://worker:***@{host}/0 refused the user and password" in caplog.text
    assert "nope" not in caplog.text and secure_stack.passwords["worker"] not in caplog.text
