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


def _secure_module():
    """devstack/secure.py, beside devstack.py (which it reuses for jars and processes)."""
    _devstack()
    spec = importlib.util.spec_from_file_location(
        "devstack_secure", ROOT / "devstack" / "secure.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("devstack_secure", module)  # its dataclasses look themselves up
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def secured_stack(home: Path, namespace_prefix: str = "sec"):
    """A SASL_SSL broker and a TLS Redis of their own, on free ports under ``home``.

    Never the dev stack's 9092/6379: these are throwaway servers with throwaway
    credentials. The worker user may use topics named ``<prefix>.*`` or
    ``<prefix>-*`` and groups ``<prefix>-*`` (the namespaces of the secured tests),
    Redis keys ``<prefix>-*``; nothing else.
    """
    from trialwatch.streams.workerproc import free_port

    secure = _secure_module()
    grants = secure.Grants(
        topic_prefixes=(f"{namespace_prefix}.", f"{namespace_prefix}-"),
        group_prefixes=(f"{namespace_prefix}-",),
        redis_key_pattern=f"{namespace_prefix}-*",
    )
    stack = secure.SecureStack(home, free_port(), free_port(), free_port(), grants)
    try:
        stack.start()
    except _devstack().StackError as exc:
        raise NoBroker(f"the secured stack did not start: {exc}") from exc
    try:
        yield stack
    finally:
        stack.stop()
