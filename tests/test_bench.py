"""The benchmark compares the reference recipe with itself (timings themselves are never asserted)."""
from __future__ import annotations

from mnist_utils import bench


def test_the_stock_pipeline_is_the_reference_recipe():
    names = [type(t).__name__ for t in bench.reference_pipeline(train=True).transforms]
    assert names[:3] == ["RandomRotation", "RandomResizedCrop", "RandomAffine"]
    assert bench.REFERENCE.batch_size == 64 and bench.REFERENCE.lr == 1e-3 and bench.REFERENCE.model == "reference"


def test_pipelines_are_measured_in_interleaved_rounds():
    calls = []
    values = bench.interleaved({"a": lambda steps, seed: calls.append(("a", seed)) or 1.0 + seed,
                                "b": lambda steps, seed: calls.append(("b", seed)) or 2.0}, rounds=3, steps=10)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]  # A B A B A B, not A A A B B B
    assert bench.spread(values["a"]) == {"min": 1.0, "median": 2.0, "max": 3.0}


def test_the_floor_counts_the_reference_recipe_flops():
    # per image: conv1 0.45 + conv2 7.2 + fc1 0.8 + fc2 0.003 MFLOP forward; backward twice that (conv1 once)
    assert 1.45e12 < bench.epoch_flops() < 1.55e12
