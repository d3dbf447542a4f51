"""Notebook 02's exercises: each worked solution, applied as its Solutions section writes it, does
what the solution says."""

from __future__ import annotations

import ast
import re

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "02_augmentation.ipynb"
DRAWS = """import matplotlib.pyplot as plt

many = augment.sample_params(10_000, torch.Generator().manual_seed(0))
shifts, counts = many["shift"].flatten().unique(return_counts=True)
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.5))
left.hist(many["angle"].numpy(), bins=20)
left.set(xlabel="angle (°)", ylabel="images")
right.bar(shifts.numpy(), counts.numpy())
right.set(xlabel="shift (px), across and down")
print(f"angles from {many['angle'].min():.2f}° to {many['angle'].max():.2f}°")
shares = (counts.double() / counts.sum()).round(decimals=3)
print("shifts:", shifts.int().tolist(), "shares:", shares.tolist())"""

FLIP = """mirror = torch.tensor([[-1.0], [1.0]])  # diag(−1, 1) in front: the first row of θ negated
identity = torch.eye(3)[:2].repeat(len(x), 1, 1)
alone = augment_images(x, mirror * identity)
print(f"a flip alone vs TF.hflip: largest difference {(alone - TF.hflip(x)).abs().max():.1e}")
p = augment.sample_params(len(x), g)
flipped = dict(p, hflip=torch.ones(len(x), dtype=torch.bool))
theta = mirror * compose_affine(p["angle"], p["crop"], p["shift"])
same = torch.allclose(theta, augment.params_to_theta(flipped))
print("the package's flip, then the recipe:", same)"""

ELASTIC = """g = torch.Generator().manual_seed(1)
rows = {"original": x}
for alpha in [8.0, 34.0, 100.0]:
    spec = augment.AugmentSpec(rotate=False, crop=False, translate=False, elastic_alpha=alpha)
    rows[f"α = {alpha:g} px"] = warped = augment.augment_batch(x, g, spec)
    print(f"α = {alpha:g} px: mean |change| per pixel {(warped - x).abs().mean():.3f}")
fig = plots.transform_rows(rows)"""

ORDER = """full = torch.tensor([[0.0, 0.0, 28.0, 28.0]] * n)  # the crop box of the whole image
still, level = torch.zeros(n, 2), torch.zeros(n)  # no shift, no angle
row = torch.tensor([[[0.0, 0.0, 1.0]]]).expand(n, 1, 3)
rotate, resized_crop, translate = (
    torch.cat([compose_affine(*args), row], dim=1)
    for args in [(angle, full, still), (level, crop, still), (level, full, shift)]
)
recipe = (rotate @ resized_crop @ translate)[:, :2]
assert torch.allclose(recipe, compose_affine(angle, crop, shift)), "the recipe's order"
shift_first = augment_images(x, (translate @ resized_crop @ rotate)[:, :2])
print(f"recipe's order vs shift first: mean |difference| {(shift_first - ours).abs().mean():.4f}")
fig = plots.transform_rows({"recipe's order": ours, "shift first": shift_first})"""


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, DRAWS, FLIP, ELASTIC, ORDER)


def test_draws_a_flip_as_a_matrix_elastic_strength_and_the_order(tmp_path):
    out = printed(run(NB, tmp_path, append=(DRAWS, FLIP, ELASTIC, ORDER)))

    low, high = map(float, re.search(r"angles from (\S+)° to (\S+)°", out).groups())
    assert -10 <= low < -9.9 and 9.9 < high <= 10, "uniform in ±10°, reaching both ends"
    m = re.search(r"shifts: (\[.*\]) shares: (\[.*\])", out)
    shifts, shares = ast.literal_eval(m[1]), ast.literal_eval(m[2])
    assert shifts == [-3, -2, -1, 0, 1, 2, 3]
    assert max(shares[0], shares[-1]) < 0.5 * min(shares[1:-1]), "the ends are rarer"

    assert float(re.search(r"vs TF.hflip: largest difference (\S+)", out)[1]) < 1e-5
    assert "the package's flip, then the recipe: True" in out

    changes = [float(c) for c in re.findall(r"mean \|change\| per pixel (\S+)", out)]
    assert len(changes) == 3 and changes[0] < changes[1] < changes[2], "stronger with α"

    order = float(re.search(r"recipe's order vs shift first: mean \|difference\| (\S+)", out)[1])
    interpolation = float(re.search(r"mean \|difference\| = (\S+) \(pixel values", out)[1])
    assert order > interpolation, "the order changes more than the interpolation does"
