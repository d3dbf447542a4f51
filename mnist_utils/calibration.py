"""Is the model's confidence honest, and how does it hold up when the digits move? Calibration (ECE, temperature
scaling), robustness to rotation, translation and noise, and input-gradient saliency maps."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .augment import apply_theta, normalize, params_to_theta, to_unit
from .config import RunConfig
from .data import Split
from .engine import predict_log_probs_unit
from .runs import VAL_SPLIT_SEED, load_run_data

SIZE = 28
KINDS = {"rotation": "rotation angle (degrees)", "shift": "translation (pixels)",
         "noise": "Gaussian noise σ (pixel units, 0–1)"}
"""The perturbations :func:`robustness_curve` knows, with the x-axis label of each."""
UNITS = {"rotation": "degrees, alternately counter-clockwise and clockwise by image",
         "shift": "pixels, right/down/left/up by image",
         "noise": "standard deviation in [0, 1] pixel units, then clipped to [0, 1]"}
"""What a level means for each perturbation (written to robustness.json)."""


# --------------------------------------------------------------------------------------------------- calibration


def split_halves(split: Split, seed: int = VAL_SPLIT_SEED) -> tuple[Split, Split]:
    """Two fixed random halves (fit, evaluate) of a split, for a model that has no held-out training images."""
    evaluate, fit = split.split_off(len(split) // 2, seed=seed)
    return fit, evaluate


def calibration_splits(config: RunConfig, test: Split) -> tuple[Split, Split, dict[str, object]]:
    """(split to fit T on, split to report on, their description): the run's validation split if it has one, else test halves."""
    if config.val_size:
        fit = load_run_data(config, test=test).val
        return fit, test, {"fit_split": f"validation: {len(fit):,} training images held out (seed {VAL_SPLIT_SEED})",
                           "eval_split": f"test: {len(test):,} images", "fit_images": len(fit), "eval_images": len(test)}
    fit, evaluate = split_halves(test)
    return fit, evaluate, {"fit_split": f"test half 1: {len(fit):,} random test images (seed {VAL_SPLIT_SEED})",
                           "eval_split": f"test half 2: the other {len(evaluate):,} test images",
                           "fit_images": len(fit), "eval_images": len(evaluate)}


# --------------------------------------------------------------------------------------------------- perturbations


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float [N, 1, 28, 28] in [0, 1] on the CPU; a float [N, 1, 28, 28] batch is returned as is."""
    if images.dtype == torch.uint8:
        return to_unit(images.cpu())
    if images.dim() != 4:
        raise ValueError(f"float images must be [N, 1, 28, 28] in [0, 1], got shape {tuple(images.shape)}")
    return images


def _per_image(value: float | Sequence | torch.Tensor, n: int, width: int | None = None) -> torch.Tensor:
    """A scalar (or one row) repeated for ``n`` images, or per-image values, as float64."""
    t = torch.as_tensor(value, dtype=torch.float64)
    shape = (n,) if width is None else (n, width)
    return t.expand(shape).clone() if t.dim() < len(shape) else t


def _affine(x: torch.Tensor, angle: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate (degrees, counter-clockwise) then translate (dx right, dy down, pixels) each image; bilinear, zero fill."""
    n = len(x)
    angle = torch.zeros(n, dtype=torch.float64) if angle is None else angle
    shift = torch.zeros(n, 2, dtype=torch.float64) if shift is None else shift
    if not angle.any() and not shift.any():
        return x.clone()
    params = {"angle": angle, "crop": torch.tensor([[0.0, 0.0, SIZE, SIZE]], dtype=torch.float64).repeat(n, 1),
              "shift": shift, "hflip": torch.zeros(n, dtype=torch.bool), "vflip": torch.zeros(n, dtype=torch.bool)}
    return apply_theta(x, params_to_theta(params, SIZE).to(x.device))


def rotate_images(images_u8: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate counter-clockwise by ``degrees`` (a number, or one per image) about the centre → float [N, 1, 28, 28]."""
    x = as_unit(images_u8)
    return _affine(x, angle=_per_image(degrees, len(x)))


def shift_images(images_u8: torch.Tensor, pixels: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Translate by ``pixels`` (a number: right; (dx right, dy down); or [N, 2]) → float [N, 1, 28, 28]."""
    x = as_unit(images_u8)
    p = torch.as_tensor(pixels, dtype=torch.float64)
    if p.dim() == 0:
        p = torch.stack([p, torch.zeros((), dtype=torch.float64)])
    return _affine(x, shift=_per_image(p, len(x), 2))


def add_noise(images_u8: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, σ²) noise per pixel (σ in [0, 1] pixel units) and clip to [0, 1] → float [N, 1, 28, 28]."""
    x = as_unit(images_u8)
    if sigma == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + sigma * noise.to(x.device)).clamp_(0.0, 1.0)


DIRECTIONS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
"""Right, down, left, up: image i of a robustness test is shifted in direction i mod 4."""


def perturb(images_u8: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """One perturbed copy of the images: rotation alternates ±level by image, shift cycles through the 4 directions."""
    n = len(images_u8)
    if kind == "rotation":
        sign = 1.0 - 2.0 * (torch.arange(n) % 2).to(torch.float64)
        return rotate_images(images_u8, sign * level)
    if kind == "shift":
        return shift_images(images_u8, DIRECTIONS[torch.arange(n) % 4] * level)
    if kind == "noise":
        return add_noise(images_u8, level, torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown perturbation {kind!r}: use one of {sorted(KINDS)}")


def robustness_curve(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, kind: str, levels: Sequence[float],
                     seed: int = 0) -> list[dict]:
    """Accuracy (a fraction) of ``model`` on the images perturbed by ``kind`` at each level: ``[{level, accuracy}]``."""
    out = []
    for level in levels:
        pred = predict_log_probs_unit(model, perturb(images_u8, kind, float(level), seed)).argmax(1)
        out.append({"level": float(level), "accuracy": (pred == labels).double().mean().item()})
    return out


# --------------------------------------------------------------------------------------------------- saliency


def _gradient_of(model: nn.Module, images_u8: torch.Tensor, score) -> torch.Tensor:
    """∂ score(log_probs).sum() / ∂ pixel [N, 28, 28] (pixels in [0, 1] units), the model in eval mode, its mode restored."""
    device = next(model.parameters()).device
    x = as_unit(images_u8).to(device).clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            log_probs = model(normalize(x).contiguous(memory_format=torch.channels_last))
            (grad,) = torch.autograd.grad(score(log_probs).sum(), x)
    finally:
        model.train(was_training)
    return grad.squeeze(1).float().cpu()


def _column(classes: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    """Class indices as a [N, 1] long tensor for ``gather``."""
    return torch.as_tensor(classes, dtype=torch.long, device=device).view(-1, 1)


def input_gradients(model: nn.Module, images_u8: torch.Tensor, target_classes: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """|∂ log p(target) / ∂ pixel| [N, 28, 28], pixels in [0, 1] units, the model in eval mode."""
    device = next(model.parameters()).device
    target = _column(target_classes, device)
    return _gradient_of(model, images_u8, lambda lp: lp.gather(1, target)).abs()


def log_odds_gradients(model: nn.Module, images_u8: torch.Tensor, classes_a: torch.Tensor | Sequence[int],
                       classes_b: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Signed ∂ [log p(a) − log p(b)] / ∂ pixel [N, 28, 28]: > 0 where brightening the pixel favours a over b."""
    device = next(model.parameters()).device
    a, b = _column(classes_a, device), _column(classes_b, device)
    return _gradient_of(model, images_u8, lambda lp: lp.gather(1, a) - lp.gather(1, b))


def confused_examples(labels: torch.Tensor, pred: torch.Tensor, confidence: torch.Tensor, pairs: Sequence[dict],
                      per_pair: int = 2, total: int = 6) -> list[int]:
    """Indices of misclassified images from the given ``{"a", "b"}`` pairs (most confident first), topped up with other errors."""
    wrong = pred != labels
    chosen: list[int] = []
    for pair in pairs:
        a, b = pair["a"], pair["b"]
        hit = (wrong & (((labels == a) & (pred == b)) | ((labels == b) & (pred == a)))).nonzero().squeeze(1)
        hit = hit[confidence[hit].argsort(descending=True)]
        chosen += [int(i) for i in hit[:per_pair] if int(i) not in chosen][: total - len(chosen)]
        if len(chosen) >= total:
            return chosen
    rest = wrong.nonzero().squeeze(1)
    rest = rest[confidence[rest].argsort(descending=True)]
    return chosen + [int(i) for i in rest if int(i) not in chosen][: total - len(chosen)]


# --------------------------------------------------------------------------------------------------- figures


def reliability_figure(results: dict[str, dict], n_bins: int = 15, min_count: int = 10) -> plt.Figure:
    """Per model (its ``before``/``after`` bins (count, confidence, accuracy), ``temperature``, ``ece_*``, ``eval_split``):
    reliability curves over counts per bin."""
    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 6.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3]}, sharex="col")
    width = 1.0 / n_bins
    for col, name in enumerate(names):
        r = results[name]
        top, bottom = axes[0][col], axes[1][col]
        top.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
        curves = ((r["before"], "before", f"(ECE {100 * r['ece_before']:.2f} %)", "C3", "o"),
                  (r["after"], f"after, T = {r['temperature']:.2f}", f"(ECE {100 * r['ece_after']:.2f} %)", "C0", "s"))
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        for i, ((count, confidence, accuracy), label, ece, colour, marker) in enumerate(curves):
            full = (count >= min_count).numpy()
            top.plot(confidence.numpy()[full], accuracy.numpy()[full], marker=marker, color=colour, label=f"{label} {ece}",
                     lw=1.2, ms=5)
            bottom.bar(edges[:-1] + width * (0.275 + 0.45 * i), count.numpy(), width=width * 0.45, color=colour, label=label)
        evaluated = r["eval_split"]
        top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel=f"accuracy in the bin (bins of ≥ {min_count} images)",
                title=f"{name}\nevaluated on {evaluated}")
        top.legend(fontsize=8, loc="lower right")
        top.grid(alpha=0.3)
        bottom.set(yscale="log", xlabel=f"confidence (max. probability), {n_bins} equal-width bins", ylabel="images per bin")
        bottom.grid(alpha=0.3, axis="y")
        bottom.legend(fontsize=7, loc="upper left")
    fig.suptitle("Reliability diagrams: accuracy vs confidence, before and after temperature scaling")
    fig.tight_layout()
    return fig


def robustness_figure(curves: dict[str, dict[str, list[dict]]]) -> plt.Figure:
    """One panel per perturbation kind: accuracy (%) against its level, one line per model, chance level dotted."""
    kinds = [k for k in KINDS if any(k in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.4 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        for i, (name, per_kind) in enumerate(curves.items()):
            rows = per_kind.get(kind, [])
            ax.plot([r["level"] for r in rows], [100 * r["accuracy"] for r in rows], marker="os^"[i % 3], label=name)
        ax.axhline(10, ls=":", color="gray", lw=1, label="chance (10 %)")
        ax.set(xlabel=KINDS[kind], ylabel="test accuracy (%)", ylim=(0, 101), title=kind.capitalize())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def saliency_figure(images_u8: torch.Tensor, labels: torch.Tensor, pred: torch.Tensor, confidence: torch.Tensor,
                    grad_pred: torch.Tensor, grad_log_odds: torch.Tensor, ncols: int = 2) -> plt.Figure:
    """Per example: the digit, |∂ log p(pred)/∂x| and the signed ∂[log p(pred) − log p(true)]/∂x, outlined."""
    n = len(images_u8)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, 3 * ncols, figsize=(3 * ncols * 1.75, nrows * 2.2 + 0.9), squeeze=False)
    magnitude = signed = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        i, part = divmod(k, 3)  # example i fills three neighbouring columns of its row
        if i >= n:
            continue
        t, p, digit = int(labels[i]), int(pred[i]), images_u8[i].float().numpy() / 255
        if part == 0:
            ax.imshow(digit, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"true {t}, predicted {p}\n(confidence {float(confidence[i]):.2f})", fontsize=8)
            continue
        if part == 1:
            g = grad_pred[i] / grad_pred[i].max().clamp_min(1e-12)
            magnitude = ax.imshow(g.numpy(), cmap="inferno", vmin=0, vmax=1)
            ax.set_title(f"|∂ log p({p}) / ∂x|\nsensitivity of '{p}'", fontsize=8)
            outline = "cyan"
        else:
            g = grad_log_odds[i] / grad_log_odds[i].abs().max().clamp_min(1e-12)
            signed = ax.imshow(g.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set_title(f"∂ [log p({p}) − log p({t})] / ∂x\nred: brighter → more '{p}'", fontsize=8)
            outline = "black"
        ax.contour(digit, levels=[0.5], colors=outline, linewidths=0.6, alpha=0.8)
    fig.suptitle("Input gradients on the most confused pairs (each map scaled to its own maximum)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    for im, x0, label, ticks in ((magnitude, 0.12, "relative |gradient| of the predicted class", [0, 0.5, 1]),
                                 (signed, 0.56, "signed log-odds gradient: blue favours true, red predicted", [-1, -0.5, 0, 0.5, 1])):
        if im is not None:
            fig.colorbar(im, cax=fig.add_axes((x0, 0.045, 0.32, 0.018)), orientation="horizontal", label=label, ticks=ticks)
    return fig
