"""The benchmark's measurements run and return sensible numbers (timings themselves are never asserted)."""
from __future__ import annotations

import pytest

from mnist_utils import bench


@pytest.mark.parametrize("measure", [lambda: bench.stock_epoch_s(3, 0), lambda: bench.project_epoch_s(3), lambda: bench.compute_epoch_s(3)])
def test_each_measurement_returns_seconds_per_epoch(measure, data_root):
    assert measure() > 0


def test_the_stock_pipeline_is_the_reference_recipe():
    names = [type(t).__name__ for t in bench.reference_pipeline(train=True).transforms]
    assert names[:3] == ["RandomRotation", "RandomResizedCrop", "RandomAffine"]
    assert bench.REFERENCE.batch_size == 64 and bench.REFERENCE.lr == 1e-3 and bench.REFERENCE.model == "reference"
