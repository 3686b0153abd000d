"""docker-compose.yml is reviewed, not run (no Docker engine here): check its wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

from trialwatch.streams.settings import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _kafka_version_in_pom() -> str:
    pom = (ROOT / "devstack" / "pom.xml").read_text()
    return pom.split("<kafka.version>")[1].split("</kafka.version>")[0]


def test_services_and_images():
    assert set(SERVICES) == {"kafka", "redis", "worker"}
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{_kafka_version_in_pom()}"
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["worker"]["build"] == "."
    assert (ROOT / "Dockerfile").exists()


def test_every_service_has_a_healthcheck_and_worker_waits_for_healthy_deps():
    for name, service in SERVICES.items():
        assert "healthcheck" in service, name
    depends = SERVICES["worker"]["depends_on"]
    assert depends == {
        "kafka": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_kafka_is_kraft_single_node_with_internal_and_host_listeners():
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == "kafka:19092"
    assert advertised["EXTERNAL"] == "localhost:9092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == 1
    assert "127.0.0.1:9092:9092" in SERVICES["kafka"]["ports"]


def test_worker_env_uses_the_variables_the_app_reads_and_points_at_the_services():
    env = SERVICES["worker"]["environment"]
    unknown = set(env) - set(ENV_VARS)
    assert not unknown, f"compose sets variables the app never reads: {unknown}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    port = env["TRIALWATCH_WEB_PORT"]
    assert f"127.0.0.1:{port}:{port}" in SERVICES["worker"]["ports"]


def test_host_ports_are_bound_to_loopback_only():
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), (name, mapping)
