"""Figure helpers; :func:`save_figure` writes PDF + PNG to the report's figures folder."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
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
