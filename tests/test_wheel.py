"""The wheel a user installs: one import root, the schemas inside, a CLI that runs.

Built from a copy of the source (so the checkout stays clean) and installed with
``--no-deps`` into a fresh virtualenv that borrows the project's dependencies
through a path entry, so the test needs no download beyond the build backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("schemas", "models", "producers", "streams")

pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in SHIPPED:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src, cwd=src)
    (built,) = dist.glob("trialwatch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", root, cwd=root)
    python = root / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
    # The dependencies, not trialwatch: .pth files inside that directory are not read.
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=root)
    return root


def test_the_wheel_holds_one_import_root_and_the_schemas(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"trialwatch"}
    for package in SHIPPED:
        assert f"trialwatch/{package}/__init__.py" in names
    schemas = {n for n in names if n.endswith(".avsc")}
    assert "trialwatch/schemas/visit_event.v1.avsc" in schemas
    assert "trialwatch/schemas/visit_event.v2.avsc" in schemas
    assert {Path(n).parent.as_posix() for n in schemas} == {"trialwatch/schemas"}
    assert not [n for n in names if n.startswith(("trialwatch/bench", "trialwatch/tests"))]
    # the dashboard's vendored htmx and its license ship with the worker
    static = {"htmx.min.js", "htmx.LICENSE"}
    assert {f"trialwatch/streams/static/{name}" for name in static} <= set(names)
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["trialwatch"]


def test_the_installed_cli_runs_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    done = _run(venv / "bin" / "trialwatch", "worker", "--help", cwd=tmp_path, timeout=120)
    assert "Start worker instance" in done.stdout
    where = _run(
        venv / "bin" / "python",
        "-c",
        "import trialwatch.streams.app, trialwatch.schemas.registry as r;"
        "print(trialwatch.streams.app.__file__);"
        "print(r.SCHEMA_DIR, r.current('VisitEvent').path.name)",
        cwd=tmp_path,
    ).stdout.splitlines()
    assert Path(where[0]).is_relative_to(venv), where[0]
    schema_dir, current = where[1].split()
    assert Path(schema_dir).is_relative_to(venv) and current == "visit_event.v2.avsc"
