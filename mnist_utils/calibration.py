"""Is the model's confidence honest, and how does it hold up when the digits move? Calibration (ECE,
temperature scaling), robustness to rotation, translation and noise, and input-gradient saliency
maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .augment import add_clipped_noise, apply_theta, normalize, params_to_theta, to_unit
from .config import RunConfig
from .data import Split
from .engine import predict_log_probs_unit
from .runs import VAL_SPLIT_SEED, load_run_data

SIDE = 28
"""An MNIST image is SIDE × SIDE pixels."""
UNITS = {
    "rotation": "degrees, alternately counter-clockwise and clockwise by image",
    "shift": "pixels, right/down/left/up by image",
    "noise": "standard deviation in [0, 1] pixel units, then clipped to [0, 1]",
}
"""The perturbations :func:`robustness_curve` knows, and what a level of each means (written to
robustness.json)."""


# ------------------------------------------------------------------------------------ calibration


def calibration_splits(config: RunConfig, test: Split) -> tuple[Split, Split, dict[str, object]]:
    """(split to fit T on, split to report on, their description): the run's validation split if it
    has one, else test halves."""
    if config.val_size:
        val = load_run_data(config, test=test).val
        held_out = f"validation: {len(val):,} training images held out (seed {VAL_SPLIT_SEED})"
        return (
            val,
            test,
            {
                "fit_split": held_out,
                "eval_split": f"test: {len(test):,} images",
                "fit_images": len(val),
                "eval_images": len(test),
            },
        )
    scored, fitted = test.split_off(len(test) // 2, seed=VAL_SPLIT_SEED)  # two fixed random halves
    return (
        fitted,
        scored,
        {
            "fit_split": f"test half 1: {len(fitted):,} random test images (seed {VAL_SPLIT_SEED})",
            "eval_split": f"test half 2: the other {len(scored):,} test images",
            "fit_images": len(fitted),
            "eval_images": len(scored),
        },
    )


# ------------------------------------------------------------------------------------ perturbations


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float [N, 1, 28, 28] in [0, 1] on the CPU; a float [N, 1, 28, 28] batch
    is returned as is."""
    return to_unit(images.cpu()) if images.dtype == torch.uint8 else images


def _affine(
    images_u8: torch.Tensor, angle: float | torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Rotate (degrees, counter-clockwise) then translate (dx right, dy down, pixels) each image;
    bilinear, zero fill."""
    x = as_unit(images_u8)
    n = len(x)
    angle, shift = torch.as_tensor(angle, dtype=torch.float64).expand(n), shift.expand(n, 2)
    if not angle.any() and not shift.any():
        return x.clone()
    params = {
        "angle": angle,
        "crop": torch.tensor([[0.0, 0.0, SIDE, SIDE]], dtype=torch.float64).expand(n, 4),
        "shift": shift,
        "hflip": torch.zeros(n, dtype=torch.bool),
        "vflip": torch.zeros(n, dtype=torch.bool),
    }
    return apply_theta(x, params_to_theta(params, SIDE).to(x.device))


def rotate_images(images_u8: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate counter-clockwise by ``degrees`` (a number, or one per image) about the centre → float
    [N, 1, 28, 28]."""
    return _affine(images_u8, degrees, torch.zeros(2, dtype=torch.float64))


def shift_images(
    images_u8: torch.Tensor, pixels: float | Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Translate by ``pixels`` (a number: right; (dx right, dy down); or [N, 2]) → float [N, 1, 28,
    28]."""
    p = torch.as_tensor(pixels, dtype=torch.float64)
    return _affine(images_u8, 0.0, torch.stack([p, torch.zeros_like(p)]) if p.dim() == 0 else p)


def add_noise(
    images_u8: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add N(0, σ²) noise per pixel (σ in [0, 1] pixel units) and clip to [0, 1] → float [N, 1, 28,
    28]."""
    x = as_unit(images_u8)
    return x.clone() if sigma == 0 else add_clipped_noise(x, sigma, generator)


DIRECTIONS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
"""Right, down, left, up: image i of a robustness test is shifted in direction i mod 4."""


def perturb(images_u8: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """One perturbed copy of the images: rotation alternates ±level by image, shift cycles through
    the 4 directions."""
    n = len(images_u8)
    if kind == "rotation":
        sign = 1.0 - 2.0 * (torch.arange(n) % 2).to(torch.float64)
        return rotate_images(images_u8, sign * level)
    if kind == "shift":
        return shift_images(images_u8, DIRECTIONS[torch.arange(n) % 4] * level)
    if kind == "noise":
        return add_noise(images_u8, level, torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown perturbation {kind!r}: use one of {sorted(UNITS)}")


def robustness_curve(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    levels: Sequence[float],
    seed: int = 0,
    precision: str = "float32",
) -> list[dict]:
    """Accuracy (a fraction) of ``model`` on the images perturbed by ``kind`` at each level, its
    forward pass in ``precision``: ``[{level, accuracy}]``."""
    out = []
    for level in levels:
        x = perturb(images_u8, kind, float(level), seed)
        pred = predict_log_probs_unit(model, x, precision=precision).argmax(1)
        out.append({"level": float(level), "accuracy": (pred == labels).double().mean().item()})
    return out


# ------------------------------------------------------------------------------------ saliency


def log_odds_gradients(
    model: nn.Module,
    images_u8: torch.Tensor,
    classes_a: torch.Tensor | Sequence[int],
    classes_b: torch.Tensor | Sequence[int] | None,
) -> torch.Tensor:
    """Signed ∂ [log p(a) − log p(b)] / ∂ pixel [N, 28, 28] (∂ log p(a) without b): > 0 where
    brightening the pixel favours a over b; pixels in [0, 1] units, the model in eval mode, its mode
    restored."""
    device = next(model.parameters()).device
    x = as_unit(images_u8).to(device).clone().requires_grad_(True)
    a, b = (
        None if c is None else torch.as_tensor(c, dtype=torch.long, device=device).view(-1, 1)
        for c in (classes_a, classes_b)
    )
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            log_probs = model(normalize(x).contiguous(memory_format=torch.channels_last))
            score = log_probs.gather(1, a) - (0 if b is None else log_probs.gather(1, b))
            (grad,) = torch.autograd.grad(score.sum(), x)
    finally:
        model.train(was_training)
    return grad.squeeze(1).float().cpu()


def input_gradients(
    model: nn.Module, images_u8: torch.Tensor, target_classes: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """|∂ log p(target) / ∂ pixel| [N, 28, 28], pixels in [0, 1] units, the model in eval mode."""
    return log_odds_gradients(model, images_u8, target_classes, None).abs()


def confused_examples(
    labels: torch.Tensor,
    pred: torch.Tensor,
    confidence: torch.Tensor,
    pairs: Sequence[dict],
    per_pair: int = 2,
    total: int = 6,
) -> list[int]:
    """Indices of misclassified images from the given ``{"a", "b"}`` pairs (most confident first),
    topped up with other errors."""
    order, wrong = confidence.argsort(descending=True).tolist(), (pred != labels).tolist()
    # most confident first
    errors = [(i, {int(labels[i]), int(pred[i])}) for i in order if wrong[i]]
    chosen: list[int] = []
    for pair in pairs:
        chosen += [
            i for i, classes in errors if classes == {pair["a"], pair["b"]} and i not in chosen
        ][:per_pair]
    return (chosen + [i for i, _ in errors if i not in chosen])[:total]
