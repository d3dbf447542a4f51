"""The reference torchvision transforms, and their batched equivalent: one random affine per image,
applied at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import REFERENCE_AUGMENT

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
"""Rounded mean and std of all training pixels in [0, 1]: notebook 1 computes them by streaming sums
and checks these."""


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of the random transforms; the defaults are the reference recipe's."""

    rotate: bool = True
    degrees: float = 10.0
    crop: bool = True
    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (0.9, 1.1)
    translate: bool = True
    shift: float = 0.1
    hflip: bool = False
    vflip: bool = False
    # elastic distortion strength in pixels (Simard et al. 2003 use 34); 0 switches it off
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0  # smoothness of the displacement field in pixels
    # clipped Gaussian pixel noise, σ ~ U(0, noise) per image (pixel units); 0 switches it off
    noise: float = 0.0

    @classmethod
    def from_names(cls, names: tuple[str, ...]) -> AugmentSpec:
        """Build a spec from config names: rotate, crop, translate, flip, strong, elastic, noise."""
        unknown = set(names) - {"rotate", "crop", "translate", "flip", "strong", "elastic", "noise"}
        if unknown:
            raise ValueError(f"unknown augmentation names {sorted(unknown)}")
        elastic, noise = 34.0 if "elastic" in names else 0.0, 0.3 if "noise" in names else 0.0
        if "strong" in names:
            return cls(
                degrees=15.0,
                scale=(0.6, 1.0),
                ratio=(0.8, 1.25),
                shift=0.12,
                elastic_alpha=elastic,
                noise=noise,
            )
        return cls(
            rotate="rotate" in names,
            crop="crop" in names,
            translate="translate" in names,
            hflip="flip" in names,
            vflip="flip" in names,
            elastic_alpha=elastic,
            noise=noise,
        )

    @property
    def active(self) -> bool:
        """Whether any transform is switched on."""
        switches = (self.rotate, self.crop, self.translate, self.hflip, self.vflip)
        return any(switches) or self.elastic_alpha > 0 or self.noise > 0


REFERENCE_SPEC = AugmentSpec.from_names(REFERENCE_AUGMENT)


def reference_transforms(spec: AugmentSpec = REFERENCE_SPEC) -> list:
    """The torchvision (PIL) transforms a reader knows, in the reference order: rotation, resized
    crop, translation."""
    from torchvision import transforms as T

    out = []
    if spec.hflip:
        out.append(T.RandomHorizontalFlip())
    if spec.vflip:
        out.append(T.RandomVerticalFlip())
    if spec.rotate:
        out.append(T.RandomRotation(spec.degrees))
    if spec.crop:
        out.append(T.RandomResizedCrop(28, scale=spec.scale, ratio=spec.ratio))
    if spec.translate:
        out.append(T.RandomAffine(0, translate=(spec.shift, spec.shift)))
    return out


def reference_pipeline(train: bool):
    """The stock torchvision pipeline: (the reference augmentation for training) + ToTensor +
    Normalize."""
    from torchvision import transforms as T

    return T.Compose(
        (reference_transforms() if train else [])
        + [T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """n draws from U(low, high) in float64."""
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def sample_crop(
    n: int, g: torch.Generator, scale=(0.7, 1.0), ratio=(0.9, 1.1), size: int = 28
) -> torch.Tensor:
    """Per-image (top, left, height, width) drawn like ``RandomResizedCrop.get_params`` (10 tries,
    then centre crop)."""
    tries = 10
    area = size * size * _uniform(n * tries, *scale, g).view(n, tries)
    aspect = torch.exp(_uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), g)).view(
        n, tries
    )
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    ok = (w > 0) & (w <= size) & (h > 0) & (h <= size)
    first = torch.argmax(ok.to(torch.int8), dim=1)
    rows = torch.arange(n)
    w, h, found = w[rows, first], h[rows, first], ok.any(dim=1)
    # ratio range always contains 1 here, so torchvision's fallback is the whole image
    w = torch.where(found, w, float(size))
    h = torch.where(found, h, float(size))
    top = torch.floor(torch.rand(n, generator=g, dtype=torch.float64) * (size - h + 1))
    left = torch.floor(torch.rand(n, generator=g, dtype=torch.float64) * (size - w + 1))
    return torch.stack([top, left, h, w], dim=1)


def sample_params(
    n: int, g: torch.Generator, spec: AugmentSpec = REFERENCE_SPEC, size: int = 28
) -> dict[str, torch.Tensor]:
    """Independent random parameters for ``n`` images each (identity where a transform is off)."""
    zeros = torch.zeros(n, dtype=torch.float64)
    angle = _uniform(n, -spec.degrees, spec.degrees, g) if spec.rotate else zeros
    crop = (
        sample_crop(n, g, spec.scale, spec.ratio, size)
        if spec.crop
        else torch.tensor([[0.0, 0.0, size, size]]).repeat(n, 1).double()
    )
    max_d = spec.shift * size
    shift = (
        torch.round(_uniform(2 * n, -max_d, max_d, g)).view(n, 2)
        if spec.translate
        else torch.zeros(n, 2, dtype=torch.float64)
    )
    hflip = (torch.rand(n, generator=g) < 0.5) if spec.hflip else torch.zeros(n, dtype=torch.bool)
    vflip = (torch.rand(n, generator=g) < 0.5) if spec.vflip else torch.zeros(n, dtype=torch.bool)
    return {"angle": angle, "crop": crop, "shift": shift, "hflip": hflip, "vflip": vflip}


def params_to_theta(p: dict[str, torch.Tensor], size: int = 28) -> torch.Tensor:
    """Compose flip → rotation → resized crop → translation into one output→input affine [N, 2, 3]
    for ``affine_grid``."""
    a = torch.deg2rad(p["angle"])
    cos, sin = torch.cos(a), torch.sin(a)
    # output -> input of rotation
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    top, left, h, w = p["crop"].unbind(1)
    scale = torch.diag_embed(torch.stack([w / size, h / size], -1))
    centre = torch.stack([(2 * left + w) / size - 1, (2 * top + h) / size - 1], -1)
    shift = 2 * p["shift"] / size
    flip = torch.diag_embed(
        torch.stack([1 - 2 * p["hflip"].double(), 1 - 2 * p["vflip"].double()], -1)
    )
    linear = flip @ rot @ scale
    offset = flip @ rot @ (centre - (scale @ shift.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
    return torch.cat([linear, offset], dim=2)


def apply_theta(
    x: torch.Tensor, theta: torch.Tensor, displacement: torch.Tensor | None = None
) -> torch.Tensor:
    """Resample a float batch [N, 1, H, W] with one affine per image, plus an optional field [N, H,
    W, 2] (bilinear, zero fill)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if displacement is not None:
        grid = grid + displacement.to(device=x.device, dtype=x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps over ±2 sigma."""
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def elastic_field(
    n: int, g: torch.Generator, alpha: float, sigma: float, size: int = 28
) -> torch.Tensor:
    """Simard-style elastic distortion: uniform noise in [-1, 1] per pixel, Gaussian-smoothed, times
    alpha pixels.

    Returned in ``grid_sample`` units (2 / size per pixel) as [N, size, size, 2] (x, y).
    """
    noise = torch.rand(n, 2, size, size, generator=g) * 2 - 1
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    noise = F.conv2d(noise, k.view(1, 1, 1, -1).repeat(2, 1, 1, 1), padding=(0, r), groups=2)
    noise = F.conv2d(noise, k.view(1, 1, -1, 1).repeat(2, 1, 1, 1), padding=(r, 0), groups=2)
    return (noise * (alpha * 2 / size)).permute(0, 2, 3, 1)


def _draw(
    shape: torch.Size, g: torch.Generator, spec: AugmentSpec, dtype: torch.dtype
) -> dict[str, torch.Tensor | None]:
    """The random numbers of one :func:`augment_batch` call on a batch of ``shape``, in its order:
    affine, field, noise."""
    n, size, noise = shape[0], shape[-1], spec.noise > 0
    return {
        **sample_params(n, g, spec, size),  # float64 on the CPU
        "field": elastic_field(n, g, spec.elastic_alpha, spec.elastic_sigma, size)
        if spec.elastic_alpha > 0
        else None,
        "sigma": spec.noise * torch.rand(n, 1, 1, 1, generator=g) if noise else None,
        "noise": torch.randn(shape, generator=g, dtype=dtype) if noise else None,
    }


def augment_batch(
    x: torch.Tensor,
    g: torch.Generator,
    spec: AugmentSpec = REFERENCE_SPEC,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Augment a float batch [N, 1, 28, 28] in [0, 1] with an independent random draw per image.

    With ``batch_size``, the random numbers are drawn for each ``batch_size`` images in turn, so the
    images equal those of separate calls on those batches, to the bit, and ``g`` ends in the same
    state; resampling them all at once is faster (the engine augments 1,024 training images per
    call)."""
    if not spec.active:
        return x
    draws = [_draw(part.shape, g, spec, x.dtype) for part in x.split(batch_size or len(x))]

    def joined(key: str) -> torch.Tensor | None:
        return None if draws[0][key] is None else torch.cat([d[key] for d in draws])

    theta = params_to_theta(
        {key: joined(key) for key in ("angle", "crop", "shift", "hflip", "vflip")}, x.shape[-1]
    )
    # MPS has no float64
    x = apply_theta(x, theta.to(device=x.device, dtype=x.dtype), joined("field"))
    if spec.noise > 0:  # the only non-black backgrounds the model sees: see notebook 7 (robustness)
        x = add_clipped_noise(x, joined("sigma").to(x.device), noise=joined("noise"))
    return x


def add_clipped_noise(
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    g: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x + σ·N(0, 1) per pixel, clipped to [0, 1], for images in [0, 1]; σ a number or one per image
    [N, 1, 1, 1].

    ``noise``: the N(0, 1) draws, shaped like x; else drawn here from ``g``."""
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype) if noise is None else noise
    return (x + sigma * noise.to(x.device)).clamp_(0.0, 1.0)


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float32 [N, 1, 28, 28] in [0, 1]: the one conversion of stored images to
    model inputs."""
    return images_u8.unsqueeze(1).to(torch.float32).div_(255.0)


def normalize(x: torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """(x - mean) / std for images in [0, 1] (the defaults as parameters: TorchScript cannot read a
    module's floats)."""
    return (x - mean) / std
