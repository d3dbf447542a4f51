"""The drawing pad of notebook 08: a 280×280 canvas, Clear, a model picker, and the model's reading
after every stroke."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
from ipycanvas import Canvas
from PIL import Image, ImageDraw

from . import checkpoints, paths
from .widgets import captioned, img_tag

PAD_SIZE, PEN = 280, 20
"""Pad side and pen width in pad pixels: a digit drawn across the pad gets MNIST's 2-pixel strokes
at 28×28."""
PAD_RUNS = ("reference", "improved-seed0", "improved_clean-seed0")
"""The runs the pad offers, those trained."""
Point = tuple[float, float]


def find_checkpoints(profile: str) -> dict[str, Path]:
    """The checkpoints of :data:`PAD_RUNS` trained for ``profile``, those that exist."""
    found = {name: paths.checkpoint_path(name, profile) for name in PAD_RUNS}
    return {name: path for name, path in found.items() if path.is_file()}


def render(strokes: list[list[Point]], size: int = PAD_SIZE, pen: int = PEN) -> Image.Image:
    """The strokes in black ink on white paper (mode "L"), round caps and joins as on the canvas."""
    image = Image.new("L", (size, size), 255)
    draw, r = ImageDraw.Draw(image), pen / 2
    for points in strokes:
        draw.line(points, fill=0, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return image


def overlay(image_u8: torch.Tensor, saliency: torch.Tensor) -> np.ndarray:
    """RGB [28, 28, 3]: |gradient| in notebook 07's inferno colours, scaled to its maximum, over the
    faded digit."""
    heat = matplotlib.colormaps["inferno"]((saliency / saliency.max().clamp_min(1e-12)).numpy())[
        ..., :3
    ]
    return 0.7 * heat + 0.3 * (image_u8.numpy()[..., None] / 255)


def view_html(reading: dict | None) -> str:
    """What the model receives, the saliency of its guess, and the guess with its top 3 as bars (or
    "draw a digit")."""
    blank = np.zeros((28, 28))
    received = reading["input"].numpy() / 255 if reading else blank
    heat = overlay(reading["input"], reading["saliency"]) if reading else blank
    images = captioned(img_tag(received, 7, "pad-input"), "what the model receives (28×28)")
    images += captioned(img_tag(heat, 7, "pad-saliency"), "saliency of its guess")
    guess = '<div class="drawpad-guess" style="font-size:20px">draw a digit</div>'
    if reading is not None:
        guess = (
            '<div class="drawpad-guess" '
            f'style="font-size:48px;line-height:1">{reading["top3"][0][0]}</div>'
            + "".join(
                f'<div style="font-family:monospace">{d} <span '
                f'style="display:inline-block;width:{150 * p:.0f}px;'
                f'height:12px;background:#1f77b4"></span> {p:.1%}</div>'
                for d, p in reading["top3"]
            )
        )
    return (
        f'<div style="display:flex;white-space:nowrap"><div>{images}</div>'
        f"<div>its top 3<br>{guess}</div></div>"
    )


class DrawPad:
    """Canvas, Clear button and model picker; after every stroke ``read(image, model)`` is shown
    next to the pad."""

    def __init__(
        self,
        checkpoints: dict[str, Path],
        read: Callable[[Image.Image, torch.nn.Module], dict | None],
    ):
        self.checkpoints, self.read, self.models = checkpoints, read, {}
        self.strokes: list[list[Point]] = []
        self.drawing, self.reading = False, None
        self.canvas = Canvas(
            width=PAD_SIZE,
            height=PAD_SIZE,
            layout=widgets.Layout(
                width=f"{PAD_SIZE}px", height=f"{PAD_SIZE}px", border="1px solid #888"
            ),
        )
        self.canvas.line_width, self.canvas.line_cap, self.canvas.line_join = PEN, "round", "round"
        self.picker = widgets.Dropdown(options=list(checkpoints), description="model")
        self.clear_button = widgets.Button(description="Clear")
        # one widget: one message per update
        self.result = widgets.HTML(layout=widgets.Layout(margin="0 0 0 24px"))
        self.result.add_class("drawpad-result")
        self.canvas.on_mouse_down(self.down)
        self.canvas.on_mouse_move(self.move)
        self.canvas.on_mouse_up(self.up)
        self.canvas.on_mouse_out(self.up)  # leaving the pad ends the stroke
        self.canvas.on_touch_start(lambda touches: self.down(*touches[0]))
        self.canvas.on_touch_move(lambda touches: self.move(*touches[0]))
        self.canvas.on_touch_end(lambda touches: self.up())
        self.clear_button.on_click(lambda _: self.clear())
        self.picker.observe(lambda _: self.update(), names="value")
        self.clear()

    def widget(self) -> widgets.Widget:
        """The pad beside what the model receives, its saliency and its answer."""
        if not self.checkpoints:
            return widgets.HTML(
                f"<b>No trained model in {paths.artifacts_dir()}: run <code>make run-all</code> "
                "first.</b>"
            )
        return widgets.HBox(
            [
                widgets.VBox([self.canvas, widgets.HBox([self.clear_button, self.picker])]),
                self.result,
            ]
        )

    def model(self) -> torch.nn.Module | None:
        """The picked model, loaded on first use."""
        name = self.picker.value
        if name is not None and name not in self.models:
            self.models[name] = checkpoints.load_model(self.checkpoints[name])[0]
        return self.models.get(name)

    def down(self, x: float, y: float) -> None:
        """Mouse down: a new stroke starts with a dot."""
        self.drawing = True
        self.strokes.append([(x, y)])
        self.canvas.fill_circle(x, y, PEN / 2)

    def move(self, x: float, y: float) -> None:
        """Mouse move: extend the stroke while the button is down."""
        if self.drawing:
            self.canvas.stroke_line(*self.strokes[-1][-1], x, y)
            self.strokes[-1].append((x, y))

    def up(self, *_: float) -> None:
        """Mouse up (or out of the pad): the stroke is finished; read the drawing."""
        if self.drawing:
            self.drawing = False
            self.update()

    def clear(self) -> None:
        """Wipe the pad and the answer."""
        self.strokes.clear()
        self.canvas.fill_style = "white"
        self.canvas.fill_rect(0, 0, PAD_SIZE, PAD_SIZE)
        self.canvas.fill_style = "black"
        self.update()

    def update(self) -> None:
        """Run ``read`` on the drawing and show its result."""
        try:
            model = self.model()
        except checkpoints.CheckpointError as exc:  # say which and what to do, no traceback
            self.result.value = f"<b>{html.escape(str(exc))}</b>"
            return
        self.reading = (
            self.read(render(self.strokes), model) if model is not None and self.strokes else None
        )
        self.result.value = view_html(self.reading)

    def draw(self, *strokes: list[Point]) -> dict | None:
        """Drive the pad without a browser: the same mouse callbacks for each stroke; return the
        last reading."""
        for points in strokes:
            self.down(*points[0])
            for point in points[1:]:
                self.move(*point)
            self.up(*points[-1])
        return self.reading
