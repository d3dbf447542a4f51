"""Figure helpers; :func:`save_figure` writes PDF + PNG to a profile's report figures folder."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import paths


def save_figure(fig: plt.Figure, name: str, profile: str) -> Path:
    """Write ``fig`` as ``name.pdf`` and ``.png`` in ``report/figures/<profile>/``; the PNG path."""
    folder = paths.figures_dir(profile)
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


def kernel_response(image: torch.Tensor, kernel: torch.Tensor, response: torch.Tensor) -> plt.Figure:
    """An image, a convolution kernel (weights written in) and the kernel's response map, side by side."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(8.4, 2.9), gridspec_kw={"width_ratios": [1, 0.6, 1]})
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
