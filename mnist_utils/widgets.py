"""The toolkit of the explorers: images as inline PNG, tiles of feature maps, sliders, and the base
class whose every control change re-renders one HTML output."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator, Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image


def to_u8(pixels: np.ndarray | torch.Tensor) -> np.ndarray:
    """[0, 1] pixels (grey [H, W] or RGB [H, W, 3]) → uint8, rounded."""
    return np.uint8(np.rint(np.clip(np.asarray(pixels, dtype=np.float64), 0, 1) * 255))


def img_tag(pixels: np.ndarray | torch.Tensor, scale: int = 4, cls: str = "shown") -> str:
    """An <img> of [0, 1] pixels, each a scale×scale block; ``cls`` names it for tests."""
    image = Image.fromarray(to_u8(pixels))
    buffer = io.BytesIO()
    image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST).save(
        buffer, "PNG"
    )
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="{cls}" data-scale="{scale}" src="data:image/png;base64,{data}">'


def captioned(tag: str, caption: str) -> str:
    """An image (or any HTML) with a caption above it, laid out inline."""
    return (
        '<div style="display:inline-block;margin:0 12px 8px 0;vertical-align:top;'
        f'line-height:1.25">'
        f"{caption}<br>{tag}</div>"
    )


def tile(images: torch.Tensor, ncols: int = 8, gap: float = 0.35) -> np.ndarray:
    """Images [C, H, W] in [0, 1] tiled in rows of ``ncols``, a 1-pixel line of ``gap`` between."""
    c, h, w = images.shape
    out = np.full((-(-c // ncols) * (h + 1) - 1, ncols * (w + 1) - 1), gap)
    for k in range(c):
        r, q = divmod(k, ncols)
        out[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = (
            images[k].clamp(0, 1).numpy()
        )
    return out


def mosaic(maps: torch.Tensor, ncols: int = 8) -> np.ndarray:
    """Feature maps [C, H, W] as one [0, 1] image, each map scaled to its own maximum."""
    maps = maps.detach().double()
    return tile(maps / maps.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12), ncols)


def filter_mosaic(weights: torch.Tensor, ncols: int = 8) -> np.ndarray:
    """Conv filters [C, 1, k, k] as one RGB image: white 0, red +, blue − (one scale)."""
    w = weights.detach().double()[:, 0]
    tiled = tile(0.5 + 0.5 * w / w.abs().max().clamp_min(1e-12), ncols, gap=np.nan)
    return matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.4")(np.ma.masked_invalid(tiled))[
        ..., :3
    ]


def figure_tag(fig: plt.Figure, cls: str = "plot") -> str:
    """A matplotlib figure as an inline PNG <img> (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="{cls}" src="data:image/png;base64,{data}">'


def slider(
    description: str, low: float, high: float, step: float, value: float
) -> widgets.FloatSlider:
    """A float slider wide enough to read its label and value."""
    return widgets.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        style={"description_width": "110px"},
        layout=widgets.Layout(width="380px"),
    )


class Explorer:
    """Controls whose every change re-renders one HTML output (one message per update)."""

    css = "explorer"
    controls_width = "400px"

    def __init__(self, controls: Sequence[widgets.Widget], watched: Sequence[widgets.Widget] = ()):
        """``watched`` (default: all value controls) re-render the output on a change."""
        self.controls, self.quiet = list(controls), False
        self.output = widgets.HTML()
        self.output.add_class(f"{self.css}-output")
        for control in watched or self.controls:
            if isinstance(control, widgets.ValueWidget):
                control.observe(lambda _: self.quiet or self.update(), names="value")

    @contextlib.contextmanager
    def one_update(self) -> Iterator[None]:
        """Change several controls, then re-render once (each change would otherwise re-render)."""
        self.quiet = True
        try:
            yield
        finally:
            self.quiet = False
        self.update()

    def widget(self) -> widgets.Widget:
        """The controls on the left, what they show on the right."""
        controls = widgets.VBox(self.controls, layout=widgets.Layout(min_width=self.controls_width))
        return widgets.HBox([controls, self.output])

    def update(self) -> None:
        """Recompute and show (subclasses)."""
        raise NotImplementedError
