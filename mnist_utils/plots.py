"""Figure helpers; :func:`save_figure` writes PDF + PNG to the report's figures folder."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch

from . import paths


def save_figure(fig: plt.Figure, name: str) -> Path:
    """Write ``fig`` as ``name.pdf`` and ``name.png`` into ``report/figures/``; return the PNG path."""
    folder = paths.figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight")
    fig.savefig(folder / f"{name}.png", bbox_inches="tight", dpi=150)
    return folder / f"{name}.png"


def image_grid(images: torch.Tensor, titles: Sequence[str], ncols: int = 8, suptitle: str = "") -> plt.Figure:
    """Show images [N, H, W] (or [N, 1, H, W]) in a grid, each with its title."""
    images, nrows = images.squeeze(1), max(1, -(-len(images) // ncols))
    lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.3, nrows * (1.4 + 0.2 * lines)), squeeze=False)
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
    fig, axes = plt.subplots(len(names), ncols, figsize=(ncols * size + 2.2, len(names) * size), squeeze=False)
    for r, name in enumerate(names):
        for c, ax in enumerate(axes[r]):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if c < len(rows[name]):
                ax.imshow(np.asarray(rows[name][c], dtype=float).squeeze(), cmap="gray")
        axes[r][0].set_ylabel("\n".join(textwrap.wrap(name, 30)), rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return fig


def error_errorbars(rows: Sequence[dict], title: str) -> plt.Figure:
    """Mean test error ± sd per variant on a log axis (horizontal), coloured by group, the reference recipe as a line."""
    colors = {"ablation": "C0", "improvement": "C2", "final": "C3"}
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=False):
        sd = r["test_accuracy_sd"]
        ax.errorbar(100 - r["test_accuracy_mean"], yi, xerr=None if np.isnan(sd) else sd, fmt="o", capsize=3,
                    color=colors.get(r["group"], "k"))
    ref = next((r["test_accuracy_mean"] for r in rows if r["variant"] == "reference"), None)
    if ref is not None:
        ax.axvline(100 - ref, color="gray", ls="--", lw=1, label="reference recipe")
    ax.set_xscale("log")  # errors from a quarter of a percent (best) to several percent (flips) stay readable
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 50]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y, [f"{r['variant']} (n={r['seeds']})" for r in rows], fontsize=9)
    ax.set(xlabel="test error (%) = 100 − accuracy; mean ± sd over seeds; log scale", title=title)
    for group, color in colors.items():
        ax.plot([], [], "o", color=color, label=group)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return fig
