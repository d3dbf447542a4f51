"""The explorers of notebooks 02, 03, 05 and 07: sliders, menus and galleries around the lessons.

Each explorer takes the notebook's own functions as callables and only does the plumbing: controls,
layout, images as PNG, and a matplotlib figure of its current state for the executed copy (widgets
need a running kernel).
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from . import plots
from .widgets import Explorer, captioned, figure_tag, filter_mosaic, img_tag, mosaic, slider

# ------------------------------------------------------------------------------------ notebook 02


class AffineExplorer(Explorer):
    """Notebook 02: 3 transforms' sliders → composed matrix, warped digit, torchvision's."""

    css = "affine"

    def __init__(
        self,
        x: torch.Tensor,
        compose: Callable,
        warp: Callable,
        torchvision_steps: Callable,
        crop_box: Callable,
        sample: Callable[[int], dict],
        digit: int = 0,
    ):
        self.x, self.digit = x, digit
        self.compose, self.warp, self.torchvision_steps = compose, warp, torchvision_steps
        self.crop_box, self.sample = crop_box, sample
        self.angle = slider("angle (°)", -10, 10, 0.5, 0.0)
        self.scale = slider("crop scale", 0.7, 1.0, 0.01, 1.0)
        self.ratio = slider("aspect ratio", 0.9, 1.1, 0.01, 1.0)
        self.dx = slider("shift x (px)", -2.8, 2.8, 0.1, 0.0)
        self.dy = slider("shift y (px)", -2.8, 2.8, 0.1, 0.0)
        self.draw_button = widgets.Button(description="new random draw")
        self.draw_button.on_click(lambda _: self.new_draw())
        self.gallery = widgets.HTML()
        self.gallery.add_class("affine-gallery")
        self.theta = self.draws = None
        super().__init__([self.angle, self.scale, self.ratio, self.dx, self.dy, self.draw_button])
        self.update()

    def widget(self) -> widgets.Widget:
        """Sliders and matrix beside the digits; the random draws of the batch below."""
        return widgets.VBox([super().widget(), self.gallery])

    def params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(angle [1], crop box [1, 4], shift [1, 2]) for the current slider values."""
        crop = self.crop_box(self.scale.value, self.ratio.value)
        return (
            torch.tensor([self.angle.value], dtype=torch.float64),
            torch.tensor([crop], dtype=torch.float64),
            torch.tensor([[self.dx.value, self.dy.value]], dtype=torch.float64),
        )

    def update(self) -> None:
        """Compose the matrix for the sliders and warp the digit both ways."""
        angle, crop, shift = self.params()
        self.theta = self.compose(angle, crop, shift)[0]
        digit = self.x[self.digit : self.digit + 1]
        self.ours = self.warp(digit, self.theta[None])[0, 0]
        self.reference = self.torchvision_steps(
            digit, float(angle[0]), [int(v) for v in crop[0]], shift[0].tolist()
        )[0, 0]
        rows = np.vstack([self.theta.numpy(), [0, 0, 1]])
        table = "\n".join(" ".join(f"{v:7.3f}" for v in row) for row in rows)
        self.output.value = (
            f"<div>composed matrix (output → input), crop box {[int(v) for v in crop[0]]}"
            f'<pre class="affine-matrix" style="font-size:15px">{table}</pre></div>'
            + captioned(img_tag(digit[0, 0], 5, "affine-original"), "original")
            + captioned(img_tag(self.ours, 5, "affine-ours"), "one composed affine")
            + captioned(img_tag(self.reference, 5, "affine-torchvision"), "torchvision, 3 steps")
        )

    def new_draw(self) -> None:
        """One random draw per image of the batch, each warped with its own composed matrix."""
        p = self.sample(len(self.x))
        self.draws = p, self.warp(self.x, self.compose(p["angle"], p["crop"], p["shift"]))
        self.gallery.value = "<div>one random draw per image</div>" + "".join(
            captioned(
                img_tag(self.draws[1][i, 0], 3, "affine-draw"),
                f"{float(p['angle'][i]):+.1f}°<br>{[int(v) for v in p['shift'][i]]} px",
            )
            for i in range(len(self.x))
        )

    def figure(self) -> plt.Figure:
        """The widget's state: the digit both ways, the last draw of the batch, the matrix above."""
        original = self.x[self.digit, 0]
        rows = {
            "the sliders: original, one composed affine, torchvision's 3 steps": [
                original,
                self.ours,
                self.reference,
            ]
        }
        if self.draws is not None:
            rows |= {"the batch": self.x, "one random draw each": self.draws[1]}
        fig = plots.transform_rows(rows)
        values = (
            f"angle {self.angle.value:+.1f}°, scale {self.scale.value:.2f}, "
            f"ratio {self.ratio.value:.2f}, "
            f"shift ({self.dx.value:+.1f}, {self.dy.value:+.1f}) px"
        )
        matrix = np.array2string(np.vstack([self.theta.numpy(), [0, 0, 1]]), precision=3)
        fig.suptitle(f"{values}; composed matrix:\n{matrix}", fontsize=9, y=1.12)
        return fig


# ------------------------------------------------------------------------------------ notebook 05


class ConfusionExplorer(Explorer):
    """Notebook 05: a confusion cell, clicked or picked → its test images, top 3 each."""

    css = "confusion"
    controls_width = "500px"

    def __init__(
        self,
        cm: torch.Tensor,
        cell: Callable[[int, int], torch.Tensor],
        images: torch.Tensor,
        probs: torch.Tensor,
        limit: int = 24,
    ):
        self.cm, self.cell, self.images, self.probs, self.limit = cm, cell, images, probs, limit
        self.true = widgets.Dropdown(options=range(10), value=4, description="true")
        self.predicted = widgets.Dropdown(options=range(10), value=9, description="predicted")
        self.true.add_class("confusion-true")
        self.predicted.add_class("confusion-predicted")
        self.buttons: dict[tuple[int, int], widgets.Button] = {}
        heading = [widgets.HTML("")] + [widgets.HTML(f"<b>{p}</b>") for p in range(10)]
        cells = [
            [widgets.HTML(f"<b>{t}</b>")] + [self.cell_button(t, p) for p in range(10)]
            for t in range(10)
        ]
        self.grid = widgets.GridBox(
            heading + [c for row in cells for c in row],
            layout=widgets.Layout(grid_template_columns="70px repeat(10, 40px)", grid_gap="2px"),
        )
        self.indices = torch.zeros(0, dtype=torch.long)
        super().__init__(
            [
                widgets.HTML("rows: the true digit, columns: the predicted one. Click a cell:"),
                self.grid,
                self.true,
                self.predicted,
            ]
        )
        self.output.layout = widgets.Layout(margin="0 0 0 24px", max_width="760px")
        self.update()

    def cell_button(self, t: int, p: int) -> widgets.Button:
        """One cell: its count; off the diagonal, redder for more (darkest: the top mistake)."""
        count = int(self.cm[t, p])
        worst = max(1, int((self.cm - torch.diag(self.cm.diagonal())).max()))
        colour = (
            "#c7e9c0"
            if t == p
            else matplotlib.colors.to_hex(matplotlib.colormaps["Reds"](0.8 * count / worst))
        )
        button = widgets.Button(
            description=str(count),
            tooltip=f"true {t}, predicted {p}",
            layout=widgets.Layout(width="40px", height="28px", padding="0"),
            style={"button_color": colour},
        )
        button.add_class(f"cm-{t}-{p}")
        button.on_click(lambda _: self.select(t, p))
        self.buttons[t, p] = button
        return button

    def select(self, t: int, p: int) -> None:
        """A click on cell (t, p): set both menus, then show the cell once."""
        with self.one_update():
            self.true.value, self.predicted.value = t, p

    def update(self) -> None:
        """Show the chosen cell's images, most confident first, with the model's top 3 for each."""
        t, p = self.true.value, self.predicted.value
        self.indices = self.cell(t, p)
        shown = self.indices[: self.limit]
        top = self.probs[shown].topk(3, dim=1)
        cards = [
            captioned(
                img_tag(self.images[i] / 255, 3, "cell-image"),
                "<br>".join(
                    f"<code>{d} {q:.3f}</code>" for d, q in zip(digits.tolist(), values.tolist())
                ),
            )
            for i, values, digits in zip(shown.tolist(), top.values, top.indices)
        ]
        more = f" (the first {len(shown)} shown)" if len(shown) < len(self.indices) else ""
        if not len(shown):
            cards = ["<div>none: the model never gave this answer for this digit here</div>"]
        self.output.value = (
            f'<div class="cell-title"><b>true {t}, predicted {p}: {len(self.indices)} '
            f"test images{more}</b>, most confident first; under each, the top 3</div>"
            + "".join(cards)
        )

    def figure(self) -> plt.Figure:
        """The chosen cell's images with their top 3, as a static grid."""
        shown = self.indices[: self.limit]
        top = self.probs[shown].topk(3, dim=1)
        titles = [
            "\n".join(f"{d}: {q:.2f}" for d, q in zip(ds.tolist(), qs.tolist()))
            for qs, ds in zip(top.values, top.indices)
        ]
        return (
            plots.image_grid(
                self.images[shown],
                titles or [""],
                ncols=8,
                suptitle=(
                    f"true {self.true.value}, predicted {self.predicted.value}: "
                    f"{len(self.indices)} test images, "
                    f"the {len(shown)} most confident shown (top 3 under each)"
                ),
            )
            if len(shown)
            else plt.figure(figsize=(6, 0.5))
        )


# ------------------------------------------------------------------------------------ notebook 03


class FeatureMapExplorer(Explorer):
    """Notebook 03: a test digit → the maps after each conv block, beside conv1's filters."""

    css = "features"

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        feature_maps: Callable,
        filters: torch.Tensor,
        note: str = "",
    ):
        self.images, self.labels, self.feature_maps, self.filters, self.note = (
            images,
            labels,
            feature_maps,
            filters,
            note,
        )
        self.index = widgets.IntSlider(
            value=0, min=0, max=len(images) - 1, description="test digit"
        )
        self.maps: list[torch.Tensor] = []
        super().__init__([self.index])
        self.update()

    def update(self) -> None:
        """Run the lesson's blocks on the chosen digit and show every channel of each."""
        i = self.index.value
        with torch.no_grad():
            self.maps = [m[0] for m in self.feature_maps(self.images[i : i + 1])]
        blocks = "".join(
            captioned(
                img_tag(mosaic(m), 4 if m.shape[-1] > 7 else 7, f"block{k + 1}"),
                f"after conv block {k + 1}: {m.shape[0]} maps of {m.shape[1]}×{m.shape[2]}",
            )
            for k, m in enumerate(self.maps)
        )
        self.output.value = (
            f"<div>{html.escape(self.note)}</div>"
            + captioned(
                img_tag(self.images[i].float() / 255, 4, "digit"),
                f"test digit {i} (a {int(self.labels[i])})",
            )
            + captioned(
                img_tag(filter_mosaic(self.filters), 12, "filters"),
                "conv1's 32 filters (red +, blue −)",
            )
            + "<br>"
            + blocks
        )

    def figure(self) -> plt.Figure:
        """The digit, conv1's filters and both blocks' maps, as one static figure."""
        i = self.index.value
        panels = [
            (self.images[i].float().numpy() / 255, f"test digit {i} (a {int(self.labels[i])})"),
            (filter_mosaic(self.filters), "conv1's filters"),
        ]
        panels += [
            (mosaic(m), f"after block {k + 1} ({m.shape[0]} maps)") for k, m in enumerate(self.maps)
        ]
        fig, axes = plt.subplots(
            1,
            len(panels),
            figsize=(3.2 * len(panels), 3.4),
            gridspec_kw={"width_ratios": [0.6, 0.8, 1.4, 1.4]},
        )
        for ax, (image, title) in zip(axes, panels):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(self.note, fontsize=9)
        fig.tight_layout()
        return fig


# ------------------------------------------------------------------------------------ notebook 07


class PerturbExplorer(Explorer):
    """Notebook 07: a perturbation and level → digits perturbed, answers, the curve's point."""

    css = "perturb"

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        perturb: Callable,
        predict: Callable,
        accuracy_at: Callable[[str, float], float],
        curves: dict[str, list[dict]],
        ranges: dict[str, tuple[float, float, float]],
    ):
        self.images, self.labels, self.perturb, self.predict = images, labels, perturb, predict
        self.accuracy_at, self.curves, self.ranges = accuracy_at, curves, ranges
        self.kind = widgets.Dropdown(options=list(ranges), description="perturbation")
        self.kind.add_class("perturb-kind")
        self.level = slider("level", *ranges[self.kind.value], ranges[self.kind.value][0])
        self.level.continuous_update = False  # one update on release: each is a test-set pass
        self.kind.observe(lambda _: self.set_range(), names="value")
        self.answers, self.accuracy = torch.zeros(0, dtype=torch.long), float("nan")
        self.shown_level = 0.0
        super().__init__([self.kind, self.level], watched=[self.level])
        self.update()

    def set_range(self) -> None:
        """A new perturbation: its own slider range, back at its lowest level (one update)."""
        low, high, step = self.ranges[self.kind.value]
        # the value moves first, in a message of its own: a browser that got the new range while
        # the handle still sat outside it would clamp the handle and send that value back
        with self.one_update():
            self.level.min = min(self.level.min, low)
            self.level.value = low
            self.level.max, self.level.step, self.level.min = high, step, low

    def update(self) -> None:
        """Perturb the digits, read them, and mark the level's accuracy on the curve."""
        kind, level = self.kind.value, float(self.level.value)
        self.shown_level = level
        self.perturbed = self.perturb(self.images, kind, level)
        self.answers = self.predict(self.perturbed).argmax(1)
        self.accuracy = self.accuracy_at(kind, level)
        cards = "".join(
            captioned(
                img_tag(self.perturbed[i, 0], 3, "perturbed"),
                (
                    f'<span class="answer" style="color:{"green" if a == y else "red"}">'
                    f"a {y}, read {a}</span>"
                ),
            )
            for i, (a, y) in enumerate(zip(self.answers.tolist(), self.labels.tolist()))
        )
        self.output.value = (
            f'<div class="perturb-title">{kind} {level:g}: accuracy on the test images '
            f'<b class="accuracy">{100 * self.accuracy:.1f} %</b></div>{cards}<br>'
            + figure_tag(self.curve_figure(figsize=(4.2, 2.8)))
        )

    def curve_figure(self, figsize: tuple[float, float] = (5, 3.2)) -> plt.Figure:
        """The accuracy curve of the chosen perturbation with the current level marked."""
        kind, rows = self.kind.value, self.curves[self.kind.value]
        fig, ax = plt.subplots(figsize=figsize)
        ax.plot(
            [r["level"] for r in rows],
            [100 * r["accuracy"] for r in rows],
            marker="o",
            label="curve (cell above)",
        )
        ax.plot(
            [self.shown_level],
            [100 * self.accuracy],
            marker="*",
            ms=16,
            color="C3",
            ls="",
            label="this level",
        )
        ax.set(xlabel=kind, ylabel="test accuracy (%)", ylim=(0, 101))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        return fig

    def figure(self) -> plt.Figure:
        """The perturbed digits with the model's answers, beside the curve with the level marked."""
        pairs = zip(self.answers.tolist(), self.labels.tolist())
        titles = [f"{'✓' if a == y else '✗'} a {y}, read {a}" for a, y in pairs]
        fig = plots.image_grid(
            self.perturbed,
            titles,
            ncols=len(titles),
            suptitle=(
                f"{self.kind.value} {self.shown_level:g}: accuracy {100 * self.accuracy:.1f} %"
            ),
        )
        return fig
