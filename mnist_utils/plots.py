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


def image_grid(images: torch.Tensor | np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.3, suptitle: str | None = None, title_colors: Sequence[str] | None = None) -> plt.Figure:
    """Show images [N, H, W] (or [N, 1, H, W]) in a grid with optional per-image titles."""
    images = torch.as_tensor(np.asarray(images)).squeeze(1) if not isinstance(images, torch.Tensor) else images.squeeze(1)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.2 * lines + 0.1)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].float().numpy(), cmap="gray")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9, color=(title_colors[i] if title_colors else "black"))
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def learning_curves(history: list[dict], title: str = "") -> plt.Figure:
    """Train/test loss per epoch (left) and test accuracy per epoch (right)."""
    epochs = [r["epoch"] for r in history]
    eval_name = "val" if "val_loss" in history[0] else "test"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss (augmented, mean over epoch)")
    ax1.plot(epochs, [r[f"{eval_name}_loss"] for r in history], "s-", label=f"{eval_name} loss")
    ax1.set(xlabel="epoch", ylabel="NLL loss", title="Loss")
    ax1.legend(fontsize=8)
    ax2.plot(epochs, [100 * r[f"{eval_name}_accuracy"] for r in history], "s-", color="C2")
    ax2.set(xlabel="epoch", ylabel=f"{eval_name} accuracy (%)", title=f"{eval_name.capitalize()} accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, title: str = "Confusion matrix (test set)") -> plt.Figure:
    """Seaborn heatmap of a confusion matrix with counts, the diagonal masked so that the errors stand out."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 6))
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    sns.heatmap(off, annot=cm, fmt="d", cmap="Reds", ax=ax, cbar_kws={"label": "misclassified images (off-diagonal)"},
                annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="lightgray")
    for i in range(len(cm)):  # correct counts on the (uncoloured) diagonal
        ax.text(i + 0.5, i + 0.5, str(cm[i, i]), ha="center", va="center", fontsize=8, color="darkgreen")
    ax.set(xlabel="predicted digit", ylabel="true digit", title=title)
    return fig


def transform_rows(rows: dict[str, Sequence], size: float = 1.2) -> plt.Figure:
    """One row of images per named transform (PIL images or tensors), the row's name on its left."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(ncols * size + 2.2, len(names) * size), squeeze=False)
    for r, name in enumerate(names):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(rows[name]):
                ax.imshow(np.asarray(torch.as_tensor(np.asarray(rows[name][c])).squeeze(), dtype=float), cmap="gray")
        axes[r][0].set_ylabel("\n".join(textwrap.wrap(name, 30)), rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return fig


def class_distribution(train_counts: Sequence[int], test_counts: Sequence[int]) -> plt.Figure:
    """Side-by-side bars of the number of images per digit in each split."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    digits = np.arange(len(train_counts))
    ax.bar(digits - 0.2, train_counts, width=0.4, label=f"train ({sum(train_counts):,})")
    ax.bar(digits + 0.2, test_counts, width=0.4, label=f"test ({sum(test_counts):,})")
    ax.set(xlabel="digit", ylabel="images", title="Class distribution", xticks=digits, ylim=(0, 1.25 * max(train_counts)))
    ax.legend(loc="upper center", ncol=2)
    ax.grid(axis="y", alpha=0.3)
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
