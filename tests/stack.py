"""Where the tests find a Kafka broker and Redis.

Order: the ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` environment variables (what
``make test`` sets); else testcontainers when a Docker daemon answers; else the
local dev stack (``devstack/devstack.py``), started here and stopped at the end.
No broker reachable is a test FAILURE with a message, never a silent skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _devstack():
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "devstack" / "devstack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("devstack", module)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        res = subprocess.run(["docker", "info"], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


class NoBroker(RuntimeError):
    """Neither the environment, Docker nor the dev stack gave us a server."""


@contextlib.contextmanager
def kafka_and_redis() -> Iterator[tuple[str, str]]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if bootstrap and redis_url:
        yield bootstrap, redis_url
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis:
            host = redis.get_container_host_ip()
            port = redis.get_exposed_port(6379)
            yield (
                bootstrap or kafka.get_bootstrap_server(),
                redis_url or f"redis://{host}:{port}/0",
            )
        return
    stack = _devstack()
    try:
        started = stack.up()
    except stack.StackError as exc:
        raise NoBroker(
            f"no Kafka broker/Redis for the integration tests: {exc}\n"
            "Run them with `make test` (starts the dev stack), or set "
            "KAFKA_BOOTSTRAP_SERVERS and REDIS_URL."
        ) from exc
    try:
        yield (
            bootstrap or f"{stack.KAFKA_HOST}:{stack.KAFKA_PORT}",
            redis_url or f"redis://{stack.REDIS_HOST}:{stack.REDIS_PORT}/0",
        )
    finally:
        stack.down(started)
