"""A model artifact: a versioned directory of plain files, never pickle.

<root>/LATEST                 name of the newest version
<root>/<version>/model.txt    LightGBM native text: P(withdraw within H days), raw
<root>/<version>/retention.json hazard coefficients of the retention curve (models.retention)
<root>/<version>/calibration.json  isotonic knots applied with numpy.interp
<root>/<version>/drift_reference.json  training bins and shares for PSI (models.drift)
<root>/<version>/tiers.json, features.json, model_card.json, *.png
"""

from __future__ import annotations

import json
from pathlib import Path

from trialwatch.models.exceptions import ArtifactError

REQUIRED = (
    "model.txt",
    "retention.json",
    "calibration.json",
    "tiers.json",
    "features.json",
    "drift_reference.json",
)


def resolve(path: Path) -> Path:
    """A version directory from either a root (follows LATEST) or a version directory."""
    path = Path(path)
    if (path / "model.txt").exists():
        return path
    latest = path / "LATEST"
    if latest.exists():
        version = path / latest.read_text().strip()
        if (version / "model.txt").exists():
            return version
        raise ArtifactError(f"{latest} names {version.name}, which has no model.txt")
    raise ArtifactError(f"no model artifact at {path} (no model.txt, no LATEST)")


def check_complete(version_dir: Path) -> None:
    missing = [name for name in REQUIRED if not (version_dir / name).exists()]
    if missing:
        raise ArtifactError(f"artifact {version_dir} is incomplete: missing {', '.join(missing)}")


def read_json(version_dir: Path, name: str) -> dict | list:
    try:
        return json.loads((version_dir / name).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {version_dir / name}: {exc}") from None


def write_json(version_dir: Path, name: str, data: object) -> None:
    (version_dir / name).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def publish_latest(root: Path, version: str) -> None:
    tmp = root / "LATEST.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(root / "LATEST")
