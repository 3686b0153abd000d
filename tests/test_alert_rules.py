"""The Prometheus alert rules operators load: valid, unit-tested, on metrics that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trialwatch.streams import metrics

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not on PATH: `make tools` installs Debian's prometheus package")
    return found


@pytest.mark.parametrize(
    "args",
    [("check", "rules", "trialwatch-rules.yml"), ("test", "rules", "trialwatch-rules.test.yml")],
)
def test_promtool_accepts_the_rules(promtool: str, args: tuple[str, ...]) -> None:
    done = subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_metric_a_rule_reads_is_exported_by_the_worker() -> None:
    exported = set()
    for metric in metrics.REGISTRY.collect():
        exported |= {sample.name for sample in metric.samples} | {metric.name}
        if metric.type == "counter":  # a labelled counter has no sample until first use
            exported.add(f"{metric.name}_total")
    rules = (RULES / "trialwatch-rules.yml").read_text()
    used = set(re.findall(r"\btrialwatch_[a-z_]+", rules))
    assert len(used) >= 8
    assert used <= exported, f"not exported: {sorted(used - exported)}"
