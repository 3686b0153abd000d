"""MLflow tracking against the real package on a sqlite:/// store in tmp_path.

The session's quick model is logged, then read back with MlflowClient: the run,
its metrics and artifacts, the registered version and its tag, an alias. Off
(no MLFLOW_TRACKING_URI) nothing is written or imported; a dead server or a
store that cannot open costs one masked line on stderr and no exception.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from trialwatch.models.artifacts import resolve
from trialwatch.streams import operations, tracking

PYTHON = sys.executable


@pytest.fixture
def sqlite_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # a sqlite store's default artifact root is ./mlruns: keep it in tmp_path
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTERED_MODEL", raising=False)
    return uri


@pytest.fixture
def recalibration(tmp_path: Path) -> tuple[Path, dict]:
    version_dir = tmp_path / "artifacts" / "20250101-000000-0123abcd"
    version_dir.mkdir(parents=True)
    calibration = tmp_path / "calibration-T07-3.json"
    calibration.write_text(json.dumps({"a": 0.91, "b": -0.35}))
    record = {
        "trial_id": "T07",
        "model_version": version_dir.name,
        "calibration_version": "3",
        "a": 0.91,
        "b": -0.35,
        "before": {"calibration_in_the_large": 1.42, "brier": 0.061},
        "after": {"calibration_in_the_large": 1.01, "brier": 0.057, "rows": 5000},
        "path": str(calibration),
    }
    return version_dir, record


def test_training_run_registered_version_and_alias(quick_model_dir, sqlite_uri, tmp_path):
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    version_dir = resolve(quick_model_dir)
    card = json.loads((version_dir / "model_card.json").read_text())
    run_id = operations.track_training(version_dir)  # what train_model calls: log_training
    assert run_id is not None

    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.run_name == card["version"] and run.info.status == "FINISHED"
    assert run.data.tags[tracking.VERSION_TAG] == card["version"]
    metrics = run.data.metrics
    assert metrics == tracking.card_metrics(card)
    for model, values in card["test_metrics"].items():
        for key, value in values.items():
            if isinstance(value, float):
                assert metrics[f"test.{model}.{key}"] == value
    savings = card["savings"]["model"]
    net = savings["per_1000"]["net_savings_usd"]
    assert metrics["savings.model.per_1000.net_savings_usd"] == net
    by_efficacy = savings["net_savings_per_1000_by_efficacy"]
    assert metrics["savings.model.net_savings_per_1000_by_efficacy.0.5"] == by_efficacy["0.5"]
    assert metrics["transfer.nominal.roc_auc_ratio"] == next(
        row["roc_auc_ratio"] for name, row in card["transfer"].items() if name.startswith("nominal")
    )
    assert metrics["transfer.high_burden.pr_auc"] > 0
    params = run.data.params
    assert params["horizon_days"] == "60"
    assert params["num_leaves"] == str(card["model"]["params"]["num_leaves"])
    assert params["savings.efficacy"] == "0.3"

    logged = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.txt", "model_card.json"} <= logged
    assert logged == {p.name for p in version_dir.iterdir() if p.is_file()}

    name = tracking.DEFAULT_MODEL
    (version,) = client.search_model_versions(f"name = '{name}'")
    assert version.tags[tracking.VERSION_TAG] == card["version"]
    assert version.run_id == run_id

    # the registered model is LightGBM's own text (no pickle) and scores like the artifact
    local = Path(download_artifacts(f"models:/{name}/{version.version}", dst_path=str(tmp_path)))
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert "model.lgb" in files and "tiers.json" in files and "model_card.json" in files
    assert not any(f.endswith((".pkl", ".pickle", ".skops")) for f in files), files
    assert (local / "model.lgb").read_text().startswith("tree")
    registered = lgb.Booster(model_file=str(local / "model.lgb"))
    X = np.random.default_rng(3).random((50, registered.num_feature()))
    original = lgb.Booster(model_file=str(version_dir / "model.txt")).predict(X)
    assert np.array_equal(registered.predict(X), original)

    tracking.set_alias(card["version"], "champion")
    assert client.get_model_version_by_alias(name, "champion").version == version.version
    with pytest.raises(tracking.TrackingError, match="no version tagged trialwatch_version=nope"):
        tracking.set_alias("nope", "challenger")


def test_recalibration_run_has_the_params_metrics_and_file(sqlite_uri, recalibration):
    from mlflow import MlflowClient

    version_dir, record = recalibration
    client = MlflowClient()

    run = client.get_run(tracking.log_recalibration(version_dir, record))
    assert run.data.params == {
        "trial_id": "T07",
        "model_version": version_dir.name,
        "calibration_version": "3",
        "a": "0.91",
        "b": "-0.35",
    }
    assert run.data.metrics == {
        "before.calibration_in_the_large": 1.42,
        "before.brier": 0.061,
        "after.calibration_in_the_large": 1.01,
        "after.brier": 0.057,
        "after.rows": 5000.0,
    }
    assert run.data.tags[tracking.VERSION_TAG] == version_dir.name
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["calibration-T07-3.json"]

    # no file written: the record itself is the artifact
    del record["path"]
    run_id = tracking.log_recalibration(version_dir, record)
    (artifact,) = client.list_artifacts(run_id)
    assert artifact.path == "calibration-T07.json"
    saved = json.loads(Path(client.download_artifacts(run_id, artifact.path)).read_text())
    assert saved == record


def test_off_writes_nothing_and_does_not_import_mlflow(tmp_path):
    """Without MLFLOW_TRACKING_URI all four calls return None at once (in a fresh
    interpreter, to see that mlflow was never imported); no mlruns/ or db appears."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from trialwatch.streams import tracking\n"
        "v = Path('v1'); v.mkdir()\n"
        "print(tracking.enabled(), tracking.log_training(v, {'version': 'v1'}),\n"
        "      tracking.log_recalibration(v, {}), tracking.set_alias('v1', 'champion'),\n"
        "      'mlflow' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "None", "None", "None", "False"]
    assert out.stderr == ""
    assert [p.name for p in tmp_path.rglob("*")] == ["v1"]


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_dead_server_is_one_masked_line_per_call(monkeypatch, capfd, tmp_path, recalibration):
    monkeypatch.chdir(tmp_path)
    uri = f"http://alice:s3cret@127.0.0.1:{_refused_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    version_dir, record = recalibration
    card = {"version": version_dir.name, "horizon_days": 60, "model": {"params": {}}}

    started = time.monotonic()
    assert tracking.log_training(version_dir, card) is None  # MLflow's retries, bounded
    assert time.monotonic() - started < 60
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # restored after the call
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a user's own setting holds
    assert tracking.log_recalibration(version_dir, record) is None
    assert tracking.set_alias(version_dir.name, "champion") is None
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert len(lines) == 3, err
    for line in lines:
        assert "MLFLOW_TRACKING_URI=http://***@127.0.0.1:" in line
        assert "skipped" in line and "Connection refused" in line
    assert "s3cret" not in out + err
    assert not (tmp_path / "mlruns").exists()


def test_a_store_that_cannot_open_is_one_line(monkeypatch, capfd, tmp_path, recalibration):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("in the way of the database's folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}")
    version_dir, record = recalibration
    assert tracking.log_recalibration(version_dir, record) is None
    _, err = capfd.readouterr()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("trialwatch: MLflow logging recalibration") and "sqlite:///" in err


def test_mlflow_not_installed_is_one_line(tmp_path):
    """mlflow made unimportable in a fresh interpreter (``sys.modules[name] = None``)."""
    code = (
        "import sys\n"
        "sys.modules['mlflow'] = None\n"
        "from pathlib import Path\n"
        "from trialwatch.streams import tracking\n"
        "print(tracking.log_training(Path('.'), {}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": "https://bob:hunter2@tracking.invalid"}
    out = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "None"
    (line,) = out.stderr.splitlines()
    assert "mlflow is not installed" in line and "https://***@tracking.invalid" in line
    assert "hunter2" not in out.stderr


def test_mask_hides_userinfo_only():
    text = "http://u:p@h:5000/x and https://t@h2"
    assert tracking.mask(text) == "http://***@h:5000/x and https://***@h2"
    assert tracking.mask("sqlite:////tmp/a@b.db") == "sqlite:////tmp/a@b.db"
