"""Notebook 07's exercises: the worked solutions, applied as the Solutions section writes them."""

from __future__ import annotations

import math
import re

import pytest
from notebook_edits import printed, run, unpublished

pytestmark = pytest.mark.slow
NB = "07_calibration_robustness.ipynb"
GRID = """\
net, net_cfg = models["reference"]
fit, _, _ = calibration.calibration_splits(net_cfg, test)
z = engine.predict_log_probs(net, fit.images).double()
grid = torch.logspace(-1, 1, 401, dtype=torch.float64)  # T from 0.1 to 10, evenly in log T
nll = torch.stack([F.cross_entropy(z / t, fit.labels) for t in grid])
t_grid = grid[nll.argmin()].item()
print(f"grid: T = {t_grid:.4f}; minimize_scalar: T = {calib['reference']['temperature']:.4f}")"""
EQUAL_MASS = '''\
def ece_equal_mass(probs, labels, n_bins=15):
    """The ECE over bins that hold equally many images, in order of confidence."""
    confidence, pred = probs.double().max(1)
    correct = (pred == labels).double()
    bins = confidence.argsort().tensor_split(n_bins)
    gaps = [(correct[b].mean() - confidence[b].mean()).abs() * len(b) for b in bins]
    return sum(gaps).item() / len(labels)


net, net_cfg = models["reference"]
_, evaluate, _ = calibration.calibration_splits(net_cfg, test)
p = engine.predict_log_probs(net, evaluate.images).exp()
drawn = torch.multinomial(p.double(), 1, generator=torch.Generator().manual_seed(0))[:, 0]
for what, y in (("true labels", evaluate.labels), ("labels drawn from p", drawn)):
    width, mass = expected_calibration_error(p, y, n_bins), ece_equal_mass(p, y, n_bins)
    print(f"{what}: ECE {100 * width:.2f} % (equal width), {100 * mass:.2f} % (equal mass)")'''
# one bin of either kind holds every image: both ECEs are then |accuracy − mean confidence|
ONE_BIN = """\
one = [ece_equal_mass(p, evaluate.labels, 1), expected_calibration_error(p, evaluate.labels, 1)]
print("one bin alike:", abs(one[0] - one[1]) < 1e-12)"""
MORE = '''\
import torchvision.transforms.functional as TF


def perturb_more(images_u8, kind, level):
    """calibration.perturb, plus a Gaussian blur (σ in pixels) and inverted colours (level 1)."""
    x = calibration.as_unit(images_u8)
    if kind == "blur":
        return x if level == 0 else TF.gaussian_blur(x, kernel_size=9, sigma=level)
    if kind == "invert":
        return 1 - x if level else x
    return calibration.perturb(images_u8, kind, level)


for name, (net, net_cfg) in models.items():
    for kind, lv in (("blur", [0, 0.5, 1.0, 1.5, 2.0]), ("invert", [0, 1])):
        answers = [
            engine.predict_log_probs_unit(
                net, perturb_more(test.images, kind, v), precision=net_cfg.precision
            ).argmax(1)
            for v in lv
        ]
        scores = [100 * (a == test.labels).double().mean().item() for a in answers]
        print(f"{name}, {kind}:", ", ".join(f"{v}: {s:.2f} %" for v, s in zip(lv, scores)))'''
CLEAN = """\
print(f"clean: {100 * robustness['reference']['rotation'][0]['accuracy']:.2f} %")"""
SMOOTH = '''\
def smooth_grad(model, images_u8, a, b, n=32, sigma=0.15):
    """The signed log-odds gradient averaged over n copies of the images with N(0, σ²) noise."""
    x = augment.to_unit(images_u8)
    rows, total = torch.arange(len(x)), torch.zeros_like(x)
    for _ in range(n):
        noisy = (x + sigma * torch.randn_like(x)).requires_grad_()
        log_probs = model(augment.normalize(noisy).contiguous(memory_format=torch.channels_last))
        score = log_probs[rows, a] - log_probs[rows, b]
        total += torch.autograd.grad(score.sum(), noisy)[0]
    return (total / n)[:, 0]


def roughness(g):
    """Mean |difference of vertical neighbours| over mean |gradient|."""
    return ((g[:, 1:] - g[:, :-1]).abs().mean() / g.abs().mean()).item()


torch.manual_seed(0)
smooth = smooth_grad(models["reference"][0], images, predicted, labels)
print(f"roughness: plain {roughness(signed):.2f}, SmoothGrad {roughness(smooth):.2f}")
fig = plots.saliency_figure(images, labels, predicted, confidence[chosen], smooth.abs(), smooth)'''
# without noise, one copy: SmoothGrad is the plain map of the lesson
PLAIN = """\
once = smooth_grad(models["reference"][0], images, predicted, labels, n=1, sigma=0)
print("one copy, no noise:", torch.allclose(once, signed, atol=1e-6))"""


def test_the_published_solutions_are_the_tested_ones():
    assert not unpublished(NB, GRID, EQUAL_MASS, MORE, SMOOTH)


def accuracies(out: str, name: str, kind: str) -> dict[float, float]:
    """The accuracies (%) that exercise 5 printed for one model and perturbation, by level."""
    line = re.search(rf"^{name}, {kind}: (.*)$", out, re.M)[1]
    return {float(v): float(a) for v, a in re.findall(r"([\d.]+): ([\d.]+) %", line)}


def test_a_grid_for_t_equal_mass_bins_blur_and_inversion_and_smoothgrad(tmp_path):
    for notebook in ("04_training.ipynb", "05_analysis.ipynb"):
        run(notebook, tmp_path)
    out = printed(run(NB, tmp_path, append=(GRID, EQUAL_MASS, ONE_BIN, MORE, CLEAN, SMOOTH, PLAIN)))

    found = re.search(r"grid: T = (\S+); minimize_scalar: T = (\S+)", out)
    t_grid, t_fit = map(float, found.groups())
    step = math.log(10) * 2 / 400  # one step of the grid, in log T
    assert abs(math.log(t_grid / t_fit)) <= step, "the grid's best T is the fitted one's neighbour"

    eces = re.findall(r"ECE ([\d.]+) % \(equal width\), ([\d.]+) % \(equal mass\)", out)
    assert len(eces) == 2 and all(0 <= float(e) <= 100 for pair in eces for e in pair)
    assert "one bin alike: True" in out

    clean = float(re.search(r"clean: ([\d.]+) %", out)[1])
    blur, invert = accuracies(out, "reference", "blur"), accuracies(out, "reference", "invert")
    assert blur[0] == invert[0] == clean, "level 0 is the unperturbed test set"
    assert invert[1] < clean - 20, "inverted colours: a picture no training image resembles"

    plain, smooth = map(float, re.search(r"roughness: plain (\S+), SmoothGrad (\S+)", out).groups())
    assert smooth < plain and "one copy, no noise: True" in out
