"""Figure helpers; :func:`save_figure` writes PDF + PNG to a profile's report figures folder."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import paths

AXIS_LABELS = {
    "rotation": "rotation angle (degrees)",
    "shift": "translation (pixels)",
    "noise": "Gaussian noise σ (pixel units, 0–1)",
}
"""The x-axis label of each perturbation of notebook 07's robustness figure."""


def save_figure(fig: plt.Figure, name: str, profile: str) -> Path:
    """Write ``fig`` as ``name.pdf`` and ``.png`` in ``report/figures/<profile>/``; the PNG path."""
    folder = paths.figures_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight")
    fig.savefig(folder / f"{name}.png", bbox_inches="tight", dpi=150)
    return folder / f"{name}.png"


def image_grid(
    images: torch.Tensor, titles: Sequence[str], ncols: int = 8, suptitle: str = ""
) -> plt.Figure:
    """Show images [N, H, W] (or [N, 1, H, W]) in a grid, each with its title."""
    images, nrows = images.squeeze(1), max(1, -(-len(images) // ncols))
    lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * 1.3, nrows * (1.4 + 0.2 * lines)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].float().numpy(), cmap="gray")
            ax.set_title(titles[i], fontsize=9)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def transform_rows(rows: dict[str, Sequence], size: float = 1.2) -> plt.Figure:
    """One row of images per named transform (PIL images or tensors), the row's name on its left."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(names), ncols, figsize=(ncols * size + 2.2, len(names) * size), squeeze=False
    )
    for r, name in enumerate(names):
        for c, ax in enumerate(axes[r]):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if c < len(rows[name]):
                ax.imshow(np.asarray(rows[name][c], dtype=float).squeeze(), cmap="gray")
        axes[r][0].set_ylabel(
            "\n".join(textwrap.wrap(name, 30)), rotation=0, ha="right", va="center", fontsize=10
        )
    fig.tight_layout()
    return fig


def kernel_response(
    image: torch.Tensor, kernel: torch.Tensor, response: torch.Tensor
) -> plt.Figure:
    """An image, a convolution kernel (weights written in) and its response map, side by side."""
    fig, (a, b, c) = plt.subplots(
        1, 3, figsize=(8.4, 2.9), gridspec_kw={"width_ratios": [1, 0.6, 1]}
    )
    a.imshow(image, cmap="gray")
    a.set_title("input digit")
    limit = float(kernel.abs().max())
    b.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (i, j), w in np.ndenumerate(kernel.numpy()):
        b.text(j, i, f"{w:g}", ha="center", va="center", fontsize=10)
    b.set_title("kernel")
    limit = float(response.abs().max())
    shown = c.imshow(response, cmap="RdBu_r", vmin=-limit, vmax=limit)
    c.set_title(f"response, {response.shape[0]}×{response.shape[1]}")
    fig.colorbar(shown, ax=c, fraction=0.046)
    for ax in (a, b, c):
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def pen_to_prediction(pad, ink, fitted, reading: dict) -> plt.Figure:
    """A drawing's way to an answer: the pad's image, the ink cropped, fitted into 20×20, centred by
    mass in 28×28 (the red cross), the top 3 and the saliency of the first."""
    from scipy import ndimage

    fig, axes = plt.subplots(
        1, 6, figsize=(14, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.2, 1]}
    )
    panels = [
        (pad, f"1. the pad, {pad.width}×{pad.height}"),
        (ink, f"2. ink cropped, {ink.width}×{ink.height}"),
        (fitted, f"3. fit into 20×20: {fitted.width}×{fitted.height}"),
        (reading["input"], "4. centred by mass, 28×28"),
        (reading["saliency"], "6. saliency of the guess"),
    ]
    for ax, (image, title) in zip([*axes[:4], axes[5]], panels):
        ax.imshow(np.asarray(image), cmap="inferno" if ax is axes[5] else "gray")
        ax.set(xticks=[], yticks=[])
        ax.set_title(title, fontsize=9)
    cy, cx = ndimage.center_of_mass(reading["input"].numpy())
    axes[3].plot(cx, cy, "r+", markersize=12)
    digits, probs = zip(*reading["top3"])
    axes[4].barh([str(d) for d in digits][::-1], probs[::-1], color="C0")
    axes[4].set(xlim=(0, 1), xlabel="probability")
    axes[4].set_title("5. top 3", fontsize=9)
    fig.tight_layout()
    return fig


def experiments(table: list[dict], notebook_reference: float | None, title: str) -> plt.Figure:
    """Test error (mean ± sd over seeds, log axis) per variant of notebook 6, each labelled with its
    seeds and epochs; dashed lines for the study's reference arm and, when given, notebook 4's
    10-epoch reference."""
    import matplotlib.ticker as ticker

    colors = {"ablation": "C0", "improvement": "C2", "final": "C3"}
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    for yi, r in zip(y, table):
        sd = r["test_accuracy_sd"]
        ax.errorbar(
            100 - r["test_accuracy_mean"],
            yi,
            xerr=None if np.isnan(sd) else sd,
            fmt="o",
            capsize=3,
            color=colors.get(r["group"], "k"),
        )
    arm = next(r for r in table if r["variant"] == "reference")
    ax.axvline(
        100 - arm["test_accuracy_mean"],
        color="gray",
        ls="--",
        lw=1,
        label=f"reference arm ({arm['epochs']} epochs)",
    )
    if notebook_reference is not None:
        ax.axvline(
            100 - notebook_reference,
            color="k",
            ls=":",
            lw=1.2,
            label="notebook 4's reference (10 epochs)",
        )
    # errors from a quarter of a percent (best) to several percent (flips) stay readable
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.FixedLocator([0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 50]))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_yticks(
        y, [f"{r['variant']} (n={r['seeds']}, {r['epochs']} ep.)" for r in table], fontsize=9
    )
    ax.set(xlabel="test error (%) = 100 − accuracy; mean ± sd over seeds; log scale", title=title)
    for group, color in colors.items():
        ax.plot([], [], "o", color=color, label=group)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.7 / fig.get_figheight(), 1, 1))
    return fig


def reliability_panel(top, bottom, name: str, r: dict, n_bins: int, min_count: int) -> None:
    """One model's reliability curves before and after temperature scaling (``top``) over its
    images per bin (``bottom``)."""
    top.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    after = f"after, T = {r['temperature']:.2f}"
    curves = (
        (r["before"], "before", r["ece_before"], "C3", "o"),
        (r["after"], after, r["ece_after"], "C0", "s"),
    )
    edges, width = np.linspace(0.0, 1.0, n_bins + 1), 1.0 / n_bins
    for i, ((count, confidence, accuracy), label, ece, colour, marker) in enumerate(curves):
        full = (count >= min_count).numpy()
        top.plot(
            confidence.numpy()[full],
            accuracy.numpy()[full],
            marker=marker,
            color=colour,
            lw=1.2,
            ms=5,
            label=f"{label} (ECE {100 * ece:.2f} %)",
        )
        left = edges[:-1] + width * (0.275 + 0.45 * i)
        bottom.bar(left, count.numpy(), width=width * 0.45, color=colour, label=label)
    top.set(xlim=(0, 1), ylim=(0, 1.02), title=f"{name}\nevaluated on {r['eval_split']}")
    top.set_ylabel(f"accuracy in the bin (bins of ≥ {min_count} images)")
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.set(yscale="log", xlabel=f"confidence, {n_bins} equal-width bins", ylabel="images")
    bottom.grid(alpha=0.3, axis="y")
    bottom.legend(fontsize=8, loc="upper left")


def reliability_figure(
    results: dict[str, dict], n_bins: int = 15, min_count: int = 10
) -> plt.Figure:
    """Per model (its ``before``/``after`` bins (count, confidence, accuracy), ``temperature``,
    ``ece_*``, ``eval_split``): reliability curves over counts per bin."""
    fig, axes = plt.subplots(
        2,
        len(results),
        figsize=(5.2 * len(results), 6.6),
        squeeze=False,
        sharex="col",
        gridspec_kw={"height_ratios": [3, 1.3]},
    )
    for col, (name, r) in enumerate(results.items()):
        reliability_panel(axes[0][col], axes[1][col], name, r, n_bins, min_count)
    fig.suptitle("Reliability: accuracy against confidence, before and after temperature scaling")
    fig.tight_layout()
    return fig


def robustness_figure(curves: dict[str, dict[str, list[dict]]]) -> plt.Figure:
    """One panel per perturbation kind: accuracy (%) against its level, one line per model, chance
    level dotted."""
    kinds = [k for k in AXIS_LABELS if any(k in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.4 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        for i, (name, per_kind) in enumerate(curves.items()):
            rows = per_kind.get(kind, [])
            ax.plot(
                [r["level"] for r in rows],
                [100 * r["accuracy"] for r in rows],
                marker="os^"[i % 3],
                label=name,
            )
        ax.axhline(10, ls=":", color="gray", lw=1, label="chance (10 %)")
        ax.set(
            xlabel=AXIS_LABELS[kind],
            ylabel="test accuracy (%)",
            ylim=(0, 101),
            title=kind.capitalize(),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def saliency_row(axes, digit, t: int, p: int, confidence: float, magnitude, signed) -> tuple:
    """One example on three axes: the digit, |∂ log p(pred)/∂x| and the signed
    ∂[log p(pred) − log p(true)]/∂x, each map scaled to its maximum and the strokes outlined."""
    axes[0].imshow(digit, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"true {t}, predicted {p}\n(confidence {confidence:.2f})", fontsize=8)
    shown = (
        axes[1].imshow(
            magnitude / magnitude.max().clamp_min(1e-12), cmap="inferno", vmin=0, vmax=1
        ),
        axes[2].imshow(
            signed / signed.abs().max().clamp_min(1e-12), cmap="RdBu_r", vmin=-1, vmax=1
        ),
    )
    axes[1].set_title(f"|∂ log p({p}) / ∂x|\nsensitivity of '{p}'", fontsize=8)
    axes[2].set_title(f"∂ [log p({p}) − log p({t})] / ∂x\nred: brighter → more '{p}'", fontsize=8)
    for ax, outline in zip(axes[1:], ("cyan", "black")):
        ax.contour(digit, levels=[0.5], colors=outline, linewidths=0.6, alpha=0.8)
    return shown


def saliency_figure(images_u8, labels, pred, confidence, grad_pred, grad_log_odds, ncols: int = 2):
    """Per example: the digit, the magnitude and the signed log-odds of its input gradients
    (:func:`saliency_row`), ``ncols`` examples to a row, with the two colour scales below."""
    n = len(images_u8)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(
        nrows, 3 * ncols, figsize=(3 * ncols * 1.75, nrows * 2.2 + 0.9), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):  # example i fills three neighbouring columns of its row
        row, col = divmod(i, ncols)
        digit = images_u8[i].float().numpy() / 255
        t, p, c = int(labels[i]), int(pred[i]), float(confidence[i])
        shown = saliency_row(
            axes[row][3 * col : 3 * col + 3], digit, t, p, c, grad_pred[i], grad_log_odds[i]
        )
    fig.suptitle("Input gradients on the most confused pairs (each map scaled to its maximum)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    if n:
        scales = (
            (shown[0], 0.12, "relative |gradient| of the predicted class", [0, 0.5, 1]),
            (
                shown[1],
                0.56,
                "signed log-odds gradient: blue favours true, red predicted",
                [-1, 0, 1],
            ),
        )
        for im, x0, label, ticks in scales:
            cax = fig.add_axes((x0, 0.045, 0.32, 0.018))
            fig.colorbar(im, cax=cax, orientation="horizontal", label=label, ticks=ticks)
    return fig


def learning_rates(rates: list[float], steps_per_epoch: int, title: str) -> plt.Figure:
    """A learning-rate schedule, step by step, with the epochs' boundaries marked."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(rates, color="C2")
    for epoch in range(steps_per_epoch, len(rates), steps_per_epoch):
        ax.axvline(epoch, color="gray", lw=0.5, ls=":")
    ax.set(
        xlabel=f"training step (dotted: every {steps_per_epoch} steps, one epoch)",
        ylabel="learning rate",
        title=title,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def speed_steps(table, subtitle: str) -> plt.Figure:
    """Seconds per epoch after each change of notebook 09 (log axis), from the stock pipeline down,
    each bar labelled with its speed-up over the step before."""
    names = ["stock pipeline", *table["change"]]
    seconds = [table["before (s/epoch)"].iloc[0], *table["after (s/epoch)"]]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    ax.barh(y, seconds, color=["C7", *["C0"] * (len(names) - 1)])
    for yi, s, up in zip(y, seconds, [None, *table["speed-up"]]):
        label = f"{s:.2g} s" + ("" if up is None else f"  ({up:.2f}×)")
        ax.text(s * 1.05, yi, label, va="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=9)
    ax.set(
        xlabel="seconds per 60,000-image epoch (log scale)",
        title=f"Speed, change by change ({subtitle})",
    )
    ax.set_xlim(min(seconds) / 2, max(seconds) * 4)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig
