"""Calibration (ECE, temperature scaling), robustness perturbations and input-gradient saliency."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import lesson_namespace
from torch import nn

from mnist_utils import calibration as C
from mnist_utils import config, engine, models

L = lesson_namespace("07_calibration_robustness.ipynb")
"""Notebook 7's calibration code: reliability_bins, expected_calibration_error, fit_temperature."""


def synthetic_predictions(n: int, gap: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 gets confidence c ~ U(0.3, 1), the rest share 1 − c; the label is 0 with probability
    c − gap."""
    g = torch.Generator().manual_seed(seed)
    conf = 0.3 + 0.7 * torch.rand(n, generator=g, dtype=torch.float64)
    probs = torch.cat([conf[:, None], ((1 - conf) / 9)[:, None].expand(n, 9)], dim=1)
    correct = torch.rand(n, generator=g, dtype=torch.float64) < (conf - gap)
    labels = torch.where(correct, 0, torch.randint(1, 10, (n,), generator=g))
    return probs, labels


def test_ece_of_calibrated_predictions_is_near_zero():
    probs, labels = synthetic_predictions(200_000, gap=0.0)
    assert L["expected_calibration_error"](probs, labels) < 0.005


def test_ece_of_over_confident_predictions_is_the_gap():
    probs, labels = synthetic_predictions(200_000, gap=0.2)
    assert L["expected_calibration_error"](probs, labels) == pytest.approx(0.2, abs=0.01)


def test_ece_by_hand():
    # four predictions at confidence 0.9 (one bin), three right: |0.75 − 0.9| = 0.15
    probs = torch.full((4, 10), 0.1 / 9)
    probs[:, 3] = 0.9
    labels = torch.tensor([3, 3, 3, 5])
    assert L["expected_calibration_error"](probs, labels) == pytest.approx(0.15, abs=1e-6)
    count, confidence, accuracy = L["reliability_bins"](probs, labels, n_bins=10)
    assert count.tolist() == [0] * 8 + [4, 0]  # 0.9 falls in (0.8, 0.9]
    assert accuracy[8] == pytest.approx(0.75) and confidence[8] == pytest.approx(0.9)


@pytest.mark.parametrize("t0", [0.5, 2.0])
def test_fit_temperature_recovers_a_known_temperature(t0):
    g = torch.Generator().manual_seed(1)
    z = 3.0 * torch.randn(20_000, 10, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(z / t0, dim=1), 1, generator=g).squeeze(1)
    # what the models output: logits up to a per-row constant
    log_probs = torch.log_softmax(z, dim=1)
    assert L["fit_temperature"](log_probs, labels) == pytest.approx(t0, rel=0.1)
    assert L["fit_temperature"](z, labels) == pytest.approx(
        L["fit_temperature"](log_probs, labels), rel=1e-4
    )


def test_temperature_scaling_keeps_the_prediction_and_lowers_the_nll_where_it_was_fitted():
    g = torch.Generator().manual_seed(2)
    z = 4.0 * torch.randn(5000, 10, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(z / 2.0, dim=1), 1, generator=g).squeeze(1)
    log_probs = torch.log_softmax(z, dim=1)
    t = L["fit_temperature"](log_probs, labels)
    scaled = torch.log_softmax(log_probs / t, dim=1)  # what notebook 7 does with T
    assert torch.equal(scaled.argmax(1), log_probs.argmax(1))
    assert torch.nn.functional.nll_loss(scaled, labels) < torch.nn.functional.nll_loss(
        log_probs, labels
    )


def test_calibration_splits_of_a_run_without_validation_are_fixed_disjoint_and_complete(test_split):
    part = test_split.subset(101, seed=0)
    fit, evaluate, _ = C.calibration_splits(config.RunConfig(val_size=0), part)
    assert (len(fit), len(evaluate)) == (50, 51)
    again, _, _ = C.calibration_splits(config.RunConfig(val_size=0), part)
    assert torch.equal(fit.images, again.images)
    assert sorted(fit.labels.tolist() + evaluate.labels.tolist()) == sorted(part.labels.tolist())


@pytest.fixture(scope="module")
def digits(test_split):
    return test_split.images[:64]


def test_rotation_by_zero_is_the_identity(digits):
    assert torch.equal(C.rotate_images(digits, 0.0), C.as_unit(digits))


def test_rotation_by_90_degrees_is_rot90_counter_clockwise(digits):
    rotated = C.rotate_images(digits, 90.0)
    # the right column becomes the top row
    expected = torch.rot90(C.as_unit(digits), k=1, dims=(-2, -1))
    assert (rotated - expected).abs().max() < 1e-4
    assert (
        C.rotate_images(digits, -90.0) - torch.rot90(C.as_unit(digits), k=-1, dims=(-2, -1))
    ).abs().max() < 1e-4


def test_rotation_takes_one_angle_per_image(digits):
    angles = torch.tensor([0.0, 90.0]).repeat(len(digits) // 2)
    rotated = C.rotate_images(digits, angles)
    assert (rotated[0] - C.as_unit(digits)[0]).abs().max() < 1e-5
    assert (rotated[1] - torch.rot90(C.as_unit(digits)[1], 1, dims=(-2, -1))).abs().max() < 1e-4


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(x, y) centre of mass of each image [N, 1, 28, 28]."""
    w = x.squeeze(1).double()
    grid = torch.arange(28, dtype=torch.float64)
    total = w.sum((1, 2))
    return torch.stack([(w.sum(1) * grid).sum(1) / total, (w.sum(2) * grid).sum(1) / total], dim=1)


@pytest.mark.parametrize(
    "pixels, expected", [(3, (3, 0)), ((-2, 3), (-2, 3)), ((1.5, -1), (1.5, -1))]
)
def test_shift_moves_the_centre_of_mass(digits, pixels, expected):
    x = C.as_unit(digits)
    shifted = C.shift_images(digits, pixels)
    kept = (
        shifted.sum((1, 2, 3)) - x.sum((1, 2, 3))
    ).abs() < 1e-3  # digits that did not leave the frame
    assert kept.sum() > len(digits) // 2
    moved = centre_of_mass(shifted[kept]) - centre_of_mass(x[kept])
    assert torch.allclose(
        moved, torch.tensor(expected, dtype=torch.float64).expand_as(moved), atol=1e-3
    )


def test_shift_takes_one_offset_per_image(digits):
    offsets = C.DIRECTIONS[torch.arange(4)] * 2
    shifted = C.shift_images(digits[:4], offsets)
    for i in range(4):
        assert torch.equal(shifted[i], C.shift_images(digits[i : i + 1], offsets[i])[0])


def test_noise_with_sigma_zero_is_the_identity_and_noise_stays_in_range(digits):
    assert torch.equal(C.add_noise(digits, 0.0), C.as_unit(digits))
    noisy = C.add_noise(digits, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and noisy.dtype == torch.float32
    assert (noisy - C.as_unit(digits)).abs().mean() > 0.1
    assert torch.equal(noisy, C.add_noise(digits, 0.5, torch.Generator().manual_seed(0)))
    # the input is left alone
    assert digits.dtype == torch.uint8 and digits.min() >= 0 and digits.max() <= 255


def test_perturb_alternates_rotation_sign_and_cycles_shift_directions(digits):
    rotated = C.perturb(digits[:2], "rotation", 90)
    assert (rotated[1] - torch.rot90(C.as_unit(digits)[1], -1, dims=(-2, -1))).abs().max() < 1e-4
    shifted = C.perturb(digits[:4], "shift", 2)
    assert torch.equal(shifted, C.shift_images(digits[:4], C.DIRECTIONS * 2))
    with pytest.raises(ValueError, match="unknown perturbation"):
        C.perturb(digits, "blur", 1.0)


def test_float_path_gives_the_same_predictions_as_the_engine(digits):
    torch.manual_seed(0)
    model = models.build_model("reference").eval()
    assert torch.allclose(
        engine.predict_log_probs_unit(model, C.as_unit(digits)),
        engine.predict_log_probs(model, digits),
        atol=1e-6,
    )


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10), nn.LogSoftmax(dim=1))


def test_robustness_curve_has_one_entry_per_level(test_split):
    images, labels = test_split.images[:200], test_split.labels[:200]
    for kind, levels in [("rotation", [0, 30, 60]), ("shift", [0, 3]), ("noise", [0.0, 0.3, 0.6])]:
        curve = C.robustness_curve(tiny_model(), images, labels, kind, levels)
        assert [r["level"] for r in curve] == [float(v) for v in levels]
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in curve)


def test_robustness_curve_at_level_zero_is_the_clean_accuracy(test_split):
    model = tiny_model()
    images, labels = test_split.images[:300], test_split.labels[:300]
    clean = (engine.predict_log_probs(model, images).argmax(1) == labels).double().mean().item()
    for kind in C.UNITS:
        assert C.robustness_curve(model, images, labels, kind, [0])[0]["accuracy"] == clean


def test_input_gradients_have_the_image_shape_and_are_not_zero(digits):
    model = models.build_model("reference")
    model.train()
    grads = C.input_gradients(model, digits[:5], [0, 1, 2, 3, 4])
    assert grads.shape == (5, 28, 28) and grads.dtype == torch.float32
    assert (grads >= 0).all() and (grads.flatten(1).amax(1) > 0).all()
    assert model.training  # the mode is restored
    assert all(p.grad is None for p in model.parameters())  # only the input gradient is computed


def test_log_odds_gradients_are_antisymmetric_and_zero_against_themselves(digits):
    torch.manual_seed(0)
    model = models.build_model("reference").eval()
    a, b = torch.tensor([4, 9, 3]), torch.tensor([9, 4, 5])
    ab = C.log_odds_gradients(model, digits[:3], a, b)
    assert ab.shape == (3, 28, 28) and (ab < 0).any() and (ab > 0).any()
    assert torch.allclose(ab, -C.log_odds_gradients(model, digits[:3], b, a))
    assert torch.equal(C.log_odds_gradients(model, digits[:3], a, a), torch.zeros(3, 28, 28))


def test_input_gradients_match_a_finite_difference(digits):
    torch.manual_seed(0)
    model = models.build_model("reference").double().eval()
    g = torch.Generator().manual_seed(0)  # a little noise: no ties inside the max-pooling windows
    x = (
        0.9 * C.as_unit(digits[:1]).double()
        + 0.05
        + 0.02 * torch.rand(1, 1, 28, 28, generator=g, dtype=torch.float64)
    )
    grad = C.input_gradients(model, x, [7])[0]
    r, c = divmod(int(grad.argmax()), 28)
    eps = 1e-4
    up, down = x.clone(), x.clone()
    up[0, 0, r, c] += eps
    down[0, 0, r, c] -= eps
    with torch.no_grad():
        f = lambda t: model(C.normalize(t))[0, 7].item()  # noqa: E731
        numeric = (f(up) - f(down)) / (2 * eps)
    assert abs(numeric) == pytest.approx(float(grad[r, c]), rel=1e-2)
    signed = C.log_odds_gradients(model, x, [7], [1])[0]
    with torch.no_grad():
        g = lambda t: (model(C.normalize(t))[0, 7] - model(C.normalize(t))[0, 1]).item()  # noqa: E731
        assert (g(up) - g(down)) / (2 * eps) == pytest.approx(
            float(signed[r, c]), rel=1e-2, abs=1e-6
        )


def test_confused_examples_takes_the_pairs_first():
    labels = torch.tensor([4, 9, 4, 3, 5, 1, 7])
    pred = torch.tensor([9, 4, 4, 5, 3, 7, 1])
    conf = torch.tensor([0.6, 0.9, 0.99, 0.8, 0.7, 0.95, 0.5])
    chosen = C.confused_examples(
        labels, pred, conf, [{"a": 4, "b": 9}, {"a": 3, "b": 5}], per_pair=2, total=5
    )
    # 4↔9 most confident first, then 3↔5, then the most confident other error
    assert chosen == [
        1,
        0,
        3,
        4,
        5,
    ]
    assert math.isclose(len(C.confused_examples(labels, pred, conf, [], total=10)), 6)
