"""The batched per-image affine describes the same augmentation as the reference torchvision
transforms."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode as IM
from torchvision.transforms import functional as TF

from mnist_utils import augment as A

N = 5000
"""Draws per distribution test: the KS tests detect a CDF difference of about 0.03 at this size."""


def fixed_params(n: int, angle=0.0, crop=(0, 0, 28, 28), shift=(0, 0)) -> dict:
    """The same explicit parameters for every image."""
    return {
        "angle": torch.full((n,), angle, dtype=torch.float64),
        "crop": torch.tensor([crop] * n, dtype=torch.float64),
        "shift": torch.tensor([shift] * n, dtype=torch.float64),
        "hflip": torch.zeros(n, dtype=torch.bool),
        "vflip": torch.zeros(n, dtype=torch.bool),
    }


@pytest.fixture(scope="module")
def digits(test_split):
    return test_split.images[:16].unsqueeze(1).float() / 255


@pytest.mark.parametrize("angle", [-10.0, 7.5, 30.0])
def test_rotation_matches_torchvision(digits, angle):
    ours = A.apply_theta(digits, A.params_to_theta(fixed_params(len(digits), angle=angle)))
    ref = TF.rotate(digits, angle, interpolation=IM.BILINEAR)
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("shift", [(3, -2), (-1, 2)])
def test_translation_matches_torchvision(digits, shift):
    ours = A.apply_theta(digits, A.params_to_theta(fixed_params(len(digits), shift=shift)))
    ref = TF.affine(digits, 0.0, list(shift), 1.0, [0.0, 0.0], interpolation=IM.BILINEAR)
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("crop", [(2, 3, 22, 24), (0, 5, 23, 23)])
def test_resized_crop_matches_torchvision(digits, crop):
    ours = A.apply_theta(digits, A.params_to_theta(fixed_params(len(digits), crop=crop)))
    ref = TF.resized_crop(digits, *crop, [28, 28], interpolation=IM.BILINEAR, antialias=False)
    assert (
        ours - ref
    ).abs().mean() < 1e-3  # differs only where torchvision clamps at the crop's border


def test_composition_order_matches_torchvision(digits):
    angle, crop, shift = -8.0, (4, 1, 23, 25), (2, 1)
    ours = A.apply_theta(digits, A.params_to_theta(fixed_params(len(digits), angle, crop, shift)))
    ref = TF.rotate(digits, angle, interpolation=IM.BILINEAR)
    ref = TF.resized_crop(ref, *crop, [28, 28], interpolation=IM.BILINEAR, antialias=False)
    ref = TF.affine(ref, 0.0, list(shift), 1.0, [0.0, 0.0], interpolation=IM.BILINEAR)
    # one resampling instead of three: small differences, but the same geometry
    assert (ours - ref).abs().mean() < 0.03
    wrong = TF.affine(TF.rotate(digits, angle), 0.0, [-shift[0], -shift[1]], 1.0, [0.0, 0.0])
    assert (ours - wrong).abs().mean() > 3 * (ours - ref).abs().mean()


def test_angle_distribution_is_uniform_10_degrees():
    p = A.sample_params(N, torch.Generator().manual_seed(0))
    angle = p["angle"].numpy()
    assert angle.min() >= -10 and angle.max() <= 10
    assert stats.kstest(angle, stats.uniform(loc=-10, scale=20).cdf).pvalue > 1e-3


def test_crop_distribution_matches_random_resized_crop():
    torch.manual_seed(0)
    img = torch.zeros(1, 28, 28)
    ref = torch.tensor(
        [T.RandomResizedCrop.get_params(img, [0.7, 1.0], [0.9, 1.1]) for _ in range(N)],
        dtype=torch.float64,
    )
    ours = A.sample_crop(N, torch.Generator().manual_seed(1))
    for k, name in enumerate(["top", "left", "height", "width"]):
        assert stats.ks_2samp(ours[:, k].numpy(), ref[:, k].numpy()).pvalue > 1e-3, name
    area = ours[:, 2] * ours[:, 3] / 784
    assert area.min() >= 0.65 and area.max() <= 1.0


def test_translation_distribution_matches_random_affine():
    torch.manual_seed(0)
    ref = torch.tensor(
        [
            T.RandomAffine.get_params((0.0, 0.0), (0.1, 0.1), None, None, [28, 28])[1]
            for _ in range(N)
        ]
    )
    ours = A.sample_params(N, torch.Generator().manual_seed(2))["shift"]
    for k in range(2):
        ref_counts = torch.bincount(ref[:, k] + 3, minlength=7).double()
        our_counts = torch.bincount(ours[:, k].long() + 3, minlength=7).double()
        assert (
            stats.chisquare(
                our_counts.numpy(),
                ref_counts.numpy() * our_counts.sum().item() / ref_counts.sum().item(),
            ).pvalue
            > 1e-3
        )


def test_each_image_gets_its_own_draw(digits):
    batch = digits[:1].repeat(8, 1, 1, 1)
    out = A.augment_batch(batch, torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(8) for j in range(i + 1, 8))


def test_same_seed_same_augmentation(digits):
    a = A.augment_batch(digits, torch.Generator().manual_seed(5))
    b = A.augment_batch(digits, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_no_augmentation_is_identity(digits):
    spec = A.AugmentSpec.from_names(())
    assert not spec.active
    assert torch.equal(A.augment_batch(digits, torch.Generator(), spec), digits)


def test_flip_spec_flips(digits):
    p = fixed_params(len(digits))
    p["hflip"] = torch.ones(len(digits), dtype=torch.bool)
    assert torch.allclose(A.apply_theta(digits, A.params_to_theta(p)), digits.flip(-1), atol=1e-5)
    p["hflip"], p["vflip"] = p["vflip"], p["hflip"]
    assert torch.allclose(A.apply_theta(digits, A.params_to_theta(p)), digits.flip(-2), atol=1e-5)


def test_reference_pipeline_lists_the_three_transforms():
    names = [type(t).__name__ for t in A.reference_pipeline(train=True).transforms]
    assert names == ["RandomRotation", "RandomResizedCrop", "RandomAffine", "ToTensor", "Normalize"]
    assert [type(t).__name__ for t in A.reference_pipeline(train=False).transforms] == [
        "ToTensor",
        "Normalize",
    ]


def test_unknown_augmentation_name_is_rejected():
    with pytest.raises(ValueError, match="unknown"):
        A.AugmentSpec.from_names(("rotate", "mixup"))


def test_elastic_field_has_the_configured_strength_and_smoothness():
    # back to pixels
    field = A.elastic_field(2000, torch.Generator().manual_seed(0), alpha=34.0, sigma=4.0) * 14
    assert field.shape == (2000, 28, 28, 2)
    # uniform noise (variance 1/3) smoothed by a unit-sum Gaussian: variance (1/3) * sum(k^2) per
    # axis, times alpha
    k = A.gaussian_kernel(4.0)
    expected_sd = 34.0 * (k.pow(2).sum() ** 2 / 3).sqrt().item()
    interior = field[:, 10:18, 10:18]  # away from the zero-padded border
    assert interior.std().item() == pytest.approx(expected_sd, rel=0.05)
    # smooth: neighbouring pixels move almost together
    neighbour = torch.corrcoef(
        torch.stack([interior[:, :, :-1].flatten(), interior[:, :, 1:].flatten()])
    )[0, 1]
    assert neighbour > 0.9


def test_elastic_off_leaves_the_affine_draws_unchanged(digits):
    plain = A.augment_batch(digits, torch.Generator().manual_seed(3))
    spec = A.AugmentSpec.from_names(("rotate", "crop", "translate", "elastic"))
    assert spec.elastic_alpha > 0 and spec.active
    distorted = A.augment_batch(digits, torch.Generator().manual_seed(3), spec)
    assert not torch.allclose(plain, distorted)
    # the elastic field is drawn after the affine parameters, so a zero-strength field reproduces
    # the plain batch
    zero = A.apply_theta(
        digits,
        A.params_to_theta(A.sample_params(len(digits), torch.Generator().manual_seed(3))),
        torch.zeros(len(digits), 28, 28, 2),
    )
    assert torch.allclose(zero, plain, atol=1e-6)


def test_elastic_alone_moves_ink_but_keeps_it_on_average(digits):
    out = A.augment_batch(
        digits, torch.Generator().manual_seed(0), A.AugmentSpec.from_names(("elastic",))
    )
    assert not torch.allclose(out, digits)
    # a zero-mean field compresses some strokes, stretches others
    ratio = out.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    assert 0.9 < ratio.mean() < 1.1 and ratio.min() > 0.5


def test_noise_brightens_the_background_by_a_random_amount_per_image():
    black = torch.zeros(256, 1, 28, 28)
    spec = A.AugmentSpec.from_names(("noise",))
    assert spec.active and not (spec.rotate or spec.crop or spec.translate)
    out = A.augment_batch(black, torch.Generator().manual_seed(0), spec)
    assert out.min() >= 0 and out.max() <= 1  # clipped to the pixel range, as notebook 7's noise is
    sigma = out.flatten(1).std(1) / 0.58  # a clipped N(0, σ²) on black has std ≈ 0.58 σ
    assert (
        sigma.max() < spec.noise * 1.1
        and sigma.min() < 0.1 * spec.noise < 0.9 * spec.noise < sigma.max()
    )
    assert (
        out.flatten(1).mean(1) > 0.01
    ).float().mean() > 0.8  # most backgrounds are grey, not black
    assert A.AugmentSpec.from_names(("strong", "noise")).noise == spec.noise


@pytest.mark.parametrize(
    "names", [("rotate", "crop", "translate"), ("strong", "flip", "elastic", "noise")]
)
def test_augmenting_several_batches_at_once_gives_the_images_of_batch_by_batch_calls(
    test_split, names
):
    # batches of 64, 64, 64 and 8
    spec, x = (
        A.AugmentSpec.from_names(names),
        A.to_unit(test_split.images[:200]),
    )
    g_each, g_once = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    each = torch.cat([A.augment_batch(batch, g_each, spec) for batch in x.split(64)])
    once = A.augment_batch(x, g_once, spec, batch_size=64)
    assert torch.equal(once, each)
    # the next batches are drawn alike too
    assert torch.equal(g_once.get_state(), g_each.get_state())
    # one draw of 200 differs
    assert not torch.equal(A.augment_batch(x, torch.Generator().manual_seed(7), spec), each)
