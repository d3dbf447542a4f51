"""The one place that knows where data, artifacts, figures and generated report files live."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Repository root (the folder that holds ``mnist_utils/``)."""
CHECKPOINT = "checkpoint.pt"


def _from_env(var: str, default: Path) -> Path:
    """Return ``$var`` as a path when set and non-empty, else ``default``."""
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Root of the torchvision-style data tree (``$MNIST_DATA_DIR`` or ``data/``)."""
    return _from_env("MNIST_DATA_DIR", ROOT / "data")


def artifacts_dir() -> Path:
    """Checkpoints, histories, metrics and benchmark results (``$MNIST_ARTIFACTS_DIR`` or
    ``artifacts/``)."""
    return _from_env("MNIST_ARTIFACTS_DIR", ROOT / "artifacts")


def report_dir() -> Path:
    """Folder the report is built in: ``report/``, or ``$MNIST_REPORT_DIR`` (e.g. a test run's
    private copy)."""
    return _from_env("MNIST_REPORT_DIR", ROOT / "report")


def figures_dir(profile: str) -> Path:
    """Figures the notebooks write for ``profile``'s report: ``<report dir>/figures/<profile>``."""
    return report_dir() / "figures" / profile


def generated_dir() -> Path:
    """The filled template (``<report dir>/generated``)."""
    return report_dir() / "generated"


def profile_dir(profile: str) -> Path:
    """Everything one profile's notebooks write: its runs, metrics.json and the report's JSON
    (``artifacts/runs/<profile>``); a run of another profile never changes it."""
    return artifacts_dir() / "runs" / profile


def run_dir(name: str, profile: str) -> Path:
    """Folder for one run's checkpoint and history: ``artifacts/runs/<profile>/<name>`` (runs of
    different profiles never share a checkpoint path)."""
    return profile_dir(profile) / name


def checkpoint_path(name: str, profile: str) -> Path:
    """The checkpoint of run ``name`` of ``profile``."""
    return run_dir(name, profile) / CHECKPOINT


def metrics_path(profile: str) -> Path:
    """JSON file with one entry per run name of ``profile``:
    ``artifacts/runs/<profile>/metrics.json``."""
    return profile_dir(profile) / "metrics.json"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` by ``write(tmp)`` on a temporary name beside it, then rename: readers see the
    old file or the whole new one, never half of it; if ``write`` raises (disk full, a failed check)
    the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def unused_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``, ..., whichever does not exist yet."""
    candidate, n = Path(path), 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
