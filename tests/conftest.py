"""Shared fixtures: servers for integration tests and unique names per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.stack import NoBroker, kafka_and_redis, secured_stack


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    try:
        with kafka_and_redis() as found:
            yield found
    except NoBroker as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def secure_stack():
    """The secured broker (SASL_SSL, SCRAM, ACLs) and Redis (TLS, ACL user) of
    ``devstack/secure.py``, started once per session on free ports."""
    # Not under pytest's basetemp: another session of the same user prunes old
    # basetemps, and this one holds a running broker's data.
    home = Path(tempfile.mkdtemp(prefix="trialwatch-secure-stack-"))
    try:
        with secured_stack(home) as stack:
            yield stack
    except NoBroker as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A temporary directory no other pytest session prunes (a worker's state)."""
    path = Path(tempfile.mkdtemp(prefix="trialwatch-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(servers: tuple[str, str]) -> str:
    return servers[0]


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str]) -> str:
    return servers[1]


@pytest.fixture
def name_factory() -> Callable[[str], str]:
    """Unique names (topics, groups, app ids) so tests never see each other's data."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test talks to 127.0.0.1 only; a proxy setting must not reroute it.
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        if var in os.environ:
            monkeypatch.delenv(var)


_TRAINED: dict[str, object] = {}


def trained_model_path():
    """The session's quick model (trained on first use)."""
    if "path" not in _TRAINED:
        import tempfile
        from pathlib import Path

        from trialwatch.models.training import train
        from trialwatch.producers.training_sets import profile_training_set, shifted_evaluations

        out = Path(tempfile.mkdtemp(prefix="trialwatch-model-"))
        _TRAINED["path"] = train(
            profile_training_set("quick"),
            horizon_days=60,
            out_dir=out,
            evaluations=shifted_evaluations("quick"),
        )
    return _TRAINED["path"]


@pytest.fixture(scope="session")
def quick_model_dir():
    """A quick-profile model trained once per test session (the demo's model)."""
    return trained_model_path()
