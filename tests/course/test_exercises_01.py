"""Notebook 01's exercises: each worked solution, applied as its Solutions section writes it, does
what the solution says."""

from __future__ import annotations

import re

import pytest
import torch
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "01_data_exploration.ipynb"
MEMORY = """pixels = train.images.numel()  # 60,000 · 28 · 28
as_uint8 = pixels * train.images.element_size()  # bytes
as_float32 = pixels * torch.zeros((), dtype=torch.float32).element_size()
print(f"training set: {as_uint8 / 1e6:.1f} MB as uint8, {as_float32 / 1e6:.1f} MB as float32")"""

MEANS = """means = torch.stack([train.images[train.labels == d].float().mean(0) for d in range(10)])
fig = plots.image_grid(means, [f"mean {d}" for d in range(10)], suptitle="Mean image per digit")
distance = torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(float("inf"))
a, b = divmod(distance.argmin().item(), 10)
print(f"closest mean images: {a} and {b}")
nearest = torch.cdist(test.images.flatten(1).float(), means.flatten(1)).argmin(1)
print(f"nearest mean image: {(nearest == test.labels).float().mean():.1%} of test digits right")"""

FLOAT16 = """print(streaming_mean_std(in_memory, torch.float16))
overflow = torch.finfo(torch.float16).max / (28 * 28 * mean)
print(f"S1 passes float16's largest number after {overflow:.0f} images")"""

WELFORD = '''def welford_mean_std(dataset, dtype=torch.float64, batch_size=1000):
    """Mean and std of all pixels from a running mean and variance, updated batch by batch."""
    mean, var, n = torch.zeros((), dtype=dtype), torch.zeros((), dtype=dtype), 0
    for x, _ in DataLoader(dataset, batch_size=batch_size):
        x = x.to(dtype)
        k, batch_mean = x.numel(), x.mean()
        batch_var = ((x - batch_mean) ** 2).mean()
        delta = batch_mean - mean
        n += k
        w = k / n  # this batch's share of the pixels so far
        mean += w * delta
        var += w * (batch_var - var + (1 - w) * delta**2)
    return mean.item(), var.item() ** 0.5, n'''

COMPARE = """shifted = TensorDataset(in_memory.tensors[0] + 100, train.labels)  # 100 brighter
for name, method in [("sums", streaming_mean_std), ("running", welford_mean_std)]:
    m, s, _ = method(shifted, torch.float32)
    print(
        f"{name:<8} mean − 100 off by {abs(m - 100 - exact_mean):.0e}, "
        f"std off by {abs(s - exact_std):.0e}"
    )"""


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, MEMORY, MEANS, FLOAT16, WELFORD, COMPARE)


def errors(out: str, method: str) -> tuple[float, float]:
    """How far the mean and the std of one method of exercise 6 are off, as printed."""
    m = re.search(rf"{method} +mean − 100 off by (\S+), std off by (\S+)", out)
    return float(m[1]), float(m[2])


def test_memory_mean_images_float16_and_welford(tmp_path, train_split, test_split):
    out = printed(run(NB, tmp_path, append=(MEMORY, MEANS, FLOAT16, WELFORD, COMPARE)))

    assert "training set: 47.0 MB as uint8, 188.2 MB as float32" in out

    means = torch.stack(
        [train_split.images[train_split.labels == d].double().mean(0) for d in range(10)]
    )
    distance = torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(float("inf"))
    pair = sorted(divmod(distance.argmin().item(), 10))
    assert f"closest mean images: {pair[0]} and {pair[1]}" in out
    nearest = torch.cdist(test_split.images.flatten(1).double(), means.flatten(1)).argmin(1)
    right = (nearest == test_split.labels).double().mean().item()
    shown = float(re.search(r"nearest mean image: (\S+)% of test digits right", out)[1])
    assert abs(shown - 100 * right) < 0.1 and 50 < shown < 95, "most test digits, not all"

    assert "(inf, nan, 47040000)" in out, "float16 overflows: inf, then inf - inf"
    assert "S1 passes float16's largest number after 639 images" in out

    sums, running = errors(out, "sums"), errors(out, "running")
    assert max(sums[0], running[0]) < 1e-4, "both find the mean, to float32's resolution at 100"
    assert running[1] < 1e-6, "the running variance keeps the std"
    assert sums[1] > 100 * running[1], "S2 / N − μ² loses it"
