"""The benchmark compares the reference recipe with itself (timings themselves are never asserted)."""
from __future__ import annotations

from mnist_utils import bench


def test_the_stock_pipeline_is_the_reference_recipe():
    names = [type(t).__name__ for t in bench.reference_pipeline(train=True).transforms]
    assert names[:3] == ["RandomRotation", "RandomResizedCrop", "RandomAffine"]
    assert bench.REFERENCE.batch_size == 64 and bench.REFERENCE.lr == 1e-3 and bench.REFERENCE.model == "reference"
