"""Figure helpers; :func:`save_figure` writes PDF + PNG to a profile's report figures folder."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import paths
from .text import plural

AXIS_LABELS = {
    "rotation": "rotation angle (degrees)",
    "shift": "translation (pixels)",
    "noise": "Gaussian noise σ (pixels in 0–1)",
}
"""The x-axis label of each perturbation of notebook 07's robustness figure."""
TEXT_WIDTH = 6.0
"""Inches: the report prints a figure at its natural size up to its text width (6.3 in), so a
figure of the report is drawn at most this wide, and its text prints at the size drawn."""
SMALL = 8
"""Points: the smallest text a figure of the report draws (printed at 7 pt or more)."""
CHAR = 0.6 * SMALL / 72
"""Inches: about the width of one character at :data:`SMALL` (DejaVu Sans)."""


def save_figure(fig: plt.Figure, name: str, profile: str) -> Path:
    """Write ``fig`` as ``name.pdf`` and ``.png`` in ``report/figures/<profile>/``; the PNG path."""
    folder = paths.figures_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight")
    fig.savefig(folder / f"{name}.png", bbox_inches="tight", dpi=150)
    return folder / f"{name}.png"


def image_grid(
    images: torch.Tensor, titles: Sequence[str], ncols: int | None = None, suptitle: str = ""
) -> plt.Figure:
    """Show images [N, H, W] (or [N, 1, H, W]) in a grid, each with its title, each column at least
    as wide as its titles; ``ncols`` by default: as many (up to 8) as fit the report's width."""
    images = images.squeeze(1)
    lines = [t.split("\n") for t in titles] or [[""]]
    column = max(0.7, max(len(line) for t in lines for line in t) * CHAR + 0.1)
    if ncols is None:
        ncols = max(1, min(8, len(images), int(TEXT_WIDTH // column)))
        rows = max(1, -(-len(images) // ncols))
        ncols = max(1, -(-len(images) // rows))  # balanced rows: 8 images in 6 columns → 4 + 4
    nrows, size = max(1, -(-len(images) // ncols)), min(1.1, max(column, TEXT_WIDTH / ncols))
    title = max(map(len, lines)) * SMALL * 1.4 / 72 + 0.05
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * size, nrows * (size + title) + (0.3 if suptitle else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].float().numpy(), cmap="gray")
            ax.set_title(titles[i], fontsize=SMALL, pad=2)
    top = 1 - 0.3 / fig.get_figheight() if suptitle else 1
    if suptitle:
        fig.suptitle(suptitle, fontsize=SMALL + 2)
    fig.tight_layout(
        pad=0.3, h_pad=0.5 + 1.3 * max(map(len, lines)), w_pad=0.2, rect=(0, 0, 1, top)
    )
    return fig


def transform_rows(rows: dict[str, Sequence], size: float = 0.9) -> plt.Figure:
    """One row of images per named transform (PIL images or tensors), the row's name on its left;
    images up to ``size`` inches, the whole at most the report's width."""
    names = ["\n".join(textwrap.wrap(name, 18, break_long_words=False)) or name for name in rows]
    ncols = max(len(v) for v in rows.values())
    label = max(len(line) for name in names for line in name.split("\n")) * CHAR + 0.2
    image = min(size, (TEXT_WIDTH - label) / ncols)
    fig, axes = plt.subplots(
        len(names), ncols, figsize=(label + ncols * image, len(names) * image), squeeze=False
    )
    for r, (name, images) in enumerate(zip(names, rows.values())):
        for c, ax in enumerate(axes[r]):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if c < len(images):
                ax.imshow(np.asarray(images[c], dtype=float).squeeze(), cmap="gray")
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=SMALL)
    fig.tight_layout(pad=0.2, h_pad=0.2, w_pad=0.2)
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


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a logarithmic axis from ``low`` to ``high``: 1-2-5 steps when they give at
    least four ticks, denser steps otherwise, so that a few labelled ticks always show."""
    exponents = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for steps in ((1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 8)):
        values = (float(f"{m * 10.0**e:.3g}") for e in exponents for m in steps)
        ticks = [v for v in values if low <= v <= high]
        if len(ticks) >= 4:
            break
    return ticks


def experiments(table: list[dict], notebook_reference: float | None, title: str) -> plt.Figure:
    """Test error (mean ± sd over seeds, log axis) per variant of notebook 6, each labelled with its
    seeds and epochs and coloured by its group; dashed lines for the study's reference arm and,
    when given, notebook 4's model; the legend below the axes, where it hides no arm."""
    import matplotlib.ticker as ticker

    colors = {"ablation": "C0", "improvement": "C2", "final": "C3"}
    height = 0.24 * len(table) + 1.7
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH, height))
    y = np.arange(len(table))[::-1]
    errors = []
    for yi, r in zip(y, table):
        sd = r["test_accuracy_sd"]
        sd = None if sd is None or np.isnan(sd) else sd
        error = 100 - r["test_accuracy_mean"]
        errors += [error - (sd or 0), error + (sd or 0)]
        ax.errorbar(error, yi, xerr=sd, fmt="o", ms=4, capsize=2, color=colors.get(r["group"], "k"))
    arm = next(r for r in table if r["variant"] == "reference")
    epochs = plural(arm["epochs"], "epoch")
    lines = [(100 - arm["test_accuracy_mean"], "--", f"the study's reference arm ({epochs})")]
    if notebook_reference is not None:
        lines.append((100 - notebook_reference, ":", "notebook 4's model"))
    for x, style, label in lines:
        ax.axvline(x, color="k" if style == ":" else "gray", ls=style, lw=1, label=label)
        errors.append(x)
    low, high = max(min(errors), 0.05) / 1.25, max(errors) * 1.25
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(ticker.FixedLocator(log_ticks(low, high)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.tick_params(labelsize=SMALL)
    ax.set_yticks(y, [f"{r['variant']} (n = {r['seeds']}, {r['epochs']} ep.)" for r in table])
    for label, r in zip(ax.get_yticklabels(), table):
        label.set_color(colors.get(r["group"], "k"))
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.set_xlabel("test error (%) = 100 − accuracy, mean ± sd over seeds", fontsize=SMALL)
    ax.set_title(title, fontsize=SMALL + 1)
    for group, color in colors.items():
        if any(r["group"] == group for r in table):
            ax.plot([], [], "o", ms=4, color=color, label=group)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=SMALL - 0.5, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(pad=0.3, rect=(0, 0.45 / height, 1, 1))  # room for the legend's two rows
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
            ms=4,
            label=f"{label} (ECE {100 * ece:.2f} %)",
        )
        left = edges[:-1] + width * (0.275 + 0.45 * i)
        bottom.bar(left, count.numpy(), width=width * 0.45, color=colour, label=label)
    heading = "\n".join(textwrap.wrap(f"{name}, evaluated on {r['eval_split']}", 40))
    top.set(xlim=(0, 1), ylim=(0, 1.02))
    top.set_title(heading, fontsize=SMALL)
    top.set_ylabel(f"accuracy in the bin\n(bins of ≥ {min_count} images)", fontsize=SMALL)
    top.legend(fontsize=SMALL - 0.5, loc="upper left")
    top.grid(alpha=0.3)
    bottom.set(yscale="log")
    bottom.set_xlabel(f"confidence, {n_bins} equal-width bins", fontsize=SMALL)
    bottom.set_ylabel("images", fontsize=SMALL)
    bottom.grid(alpha=0.3, axis="y")
    for ax in (top, bottom):
        ax.tick_params(labelsize=SMALL)


def reliability_figure(
    results: dict[str, dict], n_bins: int = 15, min_count: int = 10
) -> plt.Figure:
    """Per model (its ``before``/``after`` bins (count, confidence, accuracy), ``temperature``,
    ``ece_*``, ``eval_split``): reliability curves over counts per bin, the report's width."""
    fig, axes = plt.subplots(
        2,
        len(results),
        figsize=(min(TEXT_WIDTH, 3.3 * len(results)), 4.6),
        squeeze=False,
        sharex="col",
        gridspec_kw={"height_ratios": [3, 1.2]},
    )
    for col, (name, r) in enumerate(results.items()):
        reliability_panel(axes[0][col], axes[1][col], name, r, n_bins, min_count)
    fig.suptitle(
        "Reliability: accuracy against confidence, before and after temperature scaling",
        fontsize=SMALL + 1,
    )
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.2 / fig.get_figheight()))
    return fig


def robustness_figure(curves: dict[str, dict[str, list[dict]]]) -> plt.Figure:
    """One panel per perturbation kind: accuracy (%) against its level, one line per model, chance
    level dotted; one legend above the panels, the report's width."""
    kinds = [k for k in AXIS_LABELS if any(k in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(kinds), figsize=(TEXT_WIDTH, 2.7), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=False):
        for i, (name, per_kind) in enumerate(curves.items()):
            rows = per_kind.get(kind, [])
            ax.plot(
                [r["level"] for r in rows],
                [100 * r["accuracy"] for r in rows],
                marker="os^"[i % 3],
                ms=4,
                label=name,
            )
        ax.axhline(10, ls=":", color="gray", lw=1, label="chance (10 %)")
        ax.set(ylim=(0, 101))
        ax.set_xlabel("\n".join(textwrap.wrap(AXIS_LABELS[kind], 22)), fontsize=SMALL)
        ax.set_title(kind.capitalize(), fontsize=SMALL + 1)
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)", fontsize=SMALL)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=SMALL, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.9))
    return fig


def saliency_row(axes, digit, t: int, p: int, confidence: float, magnitude, signed) -> tuple:
    """One example on three axes: the digit, |∂ log p(pred)/∂x| and the signed
    ∂[log p(pred) − log p(true)]/∂x, each map scaled to its maximum and the strokes outlined."""
    axes[0].imshow(digit, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"true {t} → {p}\n(confidence {confidence:.2f})", fontsize=SMALL - 0.5)
    magnitude = (magnitude / magnitude.max().clamp_min(1e-12)).detach().numpy()
    signed = (signed / signed.abs().max().clamp_min(1e-12)).detach().numpy()
    shown = (
        axes[1].imshow(magnitude, cmap="inferno", vmin=0, vmax=1),
        axes[2].imshow(signed, cmap="RdBu_r", vmin=-1, vmax=1),
    )
    axes[1].set_title(rf"$|\partial \log p_{p} / \partial x|$", fontsize=SMALL)
    axes[2].set_title(rf"$\partial \log (p_{p} / p_{t}) / \partial x$", fontsize=SMALL)
    for ax, outline in zip(axes[1:], ("cyan", "black")):
        ax.contour(digit, levels=[0.5], colors=outline, linewidths=0.6, alpha=0.8)
    return shown


def saliency_figure(images_u8, labels, pred, confidence, grad_pred, grad_log_odds, ncols: int = 2):
    """Per example: the digit, the magnitude and the signed log-odds of its input gradients
    (:func:`saliency_row`), ``ncols`` examples to a row, with the two colour scales below; the
    report's width."""
    n = len(images_u8)
    nrows = max(1, -(-n // ncols))
    size = TEXT_WIDTH / (3 * ncols)
    fig, axes = plt.subplots(
        nrows, 3 * ncols, figsize=(TEXT_WIDTH, nrows * (size + 0.4) + 1.05), squeeze=False
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
    fig.suptitle(
        "Input gradients on the most confused pairs (each map scaled to its maximum)",
        fontsize=SMALL + 1,
    )
    height = fig.get_figheight()
    fig.tight_layout(pad=0.2, h_pad=0.3, rect=(0, 0.8 / height, 1, 1 - 0.25 / height))
    if n:
        scales = (
            (shown[0], 0.06, "relative |gradient| of the predicted class", [0, 0.5, 1]),
            (
                shown[1],
                0.56,
                "signed log-odds gradient:\nblue favours the true class, red the predicted",
                [-1, 0, 1],
            ),
        )
        for im, x0, label, ticks in scales:
            cax = fig.add_axes((x0, 0.55 / height, 0.38, 0.1 / height))
            bar = fig.colorbar(im, cax=cax, orientation="horizontal", ticks=ticks)
            bar.set_label(label, fontsize=SMALL)
            bar.ax.tick_params(labelsize=SMALL)
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
    each bar labelled with its speed-up over the step before; the report's width."""
    names = ["stock pipeline", *table["change"]]
    seconds = [table["before (s/epoch)"].iloc[0], *table["after (s/epoch)"]]
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH, 0.3 * len(names) + 1.0))
    y = np.arange(len(names))[::-1]
    ax.barh(y, seconds, color=["C7", *["C0"] * (len(names) - 1)])
    for yi, s, up in zip(y, seconds, [None, *table["speed-up"]]):
        label = f"{s:.2g} s" + ("" if up is None else f"  ({up:.2f}×)")
        ax.text(s * 1.05, yi, label, va="center", fontsize=SMALL)
    ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=SMALL)
    ax.tick_params(axis="x", labelsize=SMALL)
    ax.set_xlabel("seconds per 60,000-image epoch (log scale)", fontsize=SMALL)
    ax.set_title(f"Speed, change by change ({subtitle})", fontsize=SMALL + 1)
    ax.set_xlim(min(seconds) / 2, max(seconds) * 4)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout(pad=0.3)
    return fig
