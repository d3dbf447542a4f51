"""The drawing pad's logic without a browser: which models it offers, and what its mouse callbacks
hand to ``read``."""

from __future__ import annotations

import pytest
import torch
from conftest import lesson_namespace
from PIL import ImageOps

from mnist_utils import checkpoints, drawpad, paths


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """An empty private artifacts folder."""
    monkeypatch.setenv("MNIST_ARTIFACTS_DIR", str(tmp_path))
    return tmp_path


def test_the_picker_offers_only_the_trained_models_of_the_profile(artifacts):
    assert drawpad.find_checkpoints("quick") == {}
    for name, profile in (("improved-seed0", "quick"), ("reference", "default")):
        (paths.run_dir(name, profile)).mkdir(parents=True)
        (paths.run_dir(name, profile) / paths.CHECKPOINT).touch()
    assert drawpad.find_checkpoints("quick") == {
        "improved-seed0": paths.run_dir("improved-seed0", "quick") / "checkpoint.pt"
    }


def test_without_a_model_the_pad_says_what_to_run(artifacts):
    pad = drawpad.DrawPad({}, read=lambda image, model: pytest.fail("read without a model"))
    assert "make run-all" in pad.widget().value
    assert pad.draw([(10, 10), (200, 200)]) is None and "draw a digit" in pad.result.value


def test_a_finished_stroke_is_read_once_with_its_ink_on_the_image(monkeypatch):
    monkeypatch.setattr(checkpoints, "load_model", lambda path: ("the model", None, {}))
    seen, reading = (
        [],
        {
            "input": torch.zeros(28, 28, dtype=torch.uint8),
            "top3": [[4, 0.5], [9, 0.3], [1, 0.1]],
            "saliency": torch.rand(28, 28),
        },
    )
    pad = drawpad.DrawPad(
        {"reference": "ckpt"}, read=lambda image, model: seen.append((image, model)) or reading
    )
    assert not seen and "draw a digit" in pad.result.value  # a blank pad is not read
    pad.move(5, 5)  # moving without the button down draws nothing
    pad.down(60, 40)
    pad.move(60, 240)
    pad.move(400, 300)  # off the pad's edge
    pad.up(60, 240)
    pad.up(60, 240)  # mouse-out after mouse-up: still one reading
    pad.move(90, 90)  # nor after the button is released
    assert pad.strokes == [[(60, 40), (60, 240), (400, 300)]]
    assert len(seen) == 1 and seen[0][1] == "the model"
    image = seen[0][0]
    assert image.size == (drawpad.PAD_SIZE, drawpad.PAD_SIZE)
    left, top, right, bottom = ImageOps.invert(image).getbbox()
    assert (left, top) == (60 - drawpad.PEN // 2, 40 - drawpad.PEN // 2) and (right, bottom) == (
        drawpad.PAD_SIZE,
        drawpad.PAD_SIZE,
    )
    assert (
        '"drawpad-guess"' in pad.result.value
        and ">4<" in pad.result.value
        and "30.0%" in pad.result.value
    )
    pad.clear()
    assert not pad.strokes and len(seen) == 1 and "draw a digit" in pad.result.value


def test_a_damaged_checkpoint_is_named_on_the_pad_not_raised(tmp_path):
    damaged = tmp_path / "checkpoint.pt"
    damaged.write_bytes(b"not a checkpoint")
    pad = drawpad.DrawPad(
        {"reference": damaged}, read=lambda image, model: pytest.fail("read without a model")
    )
    assert pad.draw([(60, 40), (60, 240)]) is None and str(damaged) in pad.result.value


def test_notebook_8s_reading_refuses_what_is_no_digit_and_centres_what_is(tiny_checkpoint):
    lesson = lesson_namespace("08_draw_a_digit.ipynb")
    model = checkpoints.load_model(tiny_checkpoint)[0]
    pad = drawpad.DrawPad({"tiny": tiny_checkpoint}, lesson["read_digit"])
    assert pad.reading is None and "draw a digit" in pad.result.value  # a blank pad
    assert pad.draw([(140, 140)]) is None and "draw a digit" in pad.result.value  # a dot
    assert pad.draw([(140, 140), (145, 150)]) is None  # a short dash is a dot too
    pad.clear()
    off_edge = pad.draw([(200, 60), (330, -40)])  # leaves the pad at the top right corner
    assert off_edge is None or len(off_edge["top3"]) == 3
    pad.clear()
    reading = pad.draw([(140, 40), (140, 240)])  # a vertical line, top to bottom
    assert f">{reading['top3'][0][0]}<" in pad.result.value, "the displayed answer is the reading"
    x = reading["input"]
    assert x.shape == (28, 28) and x.dtype == torch.uint8
    rows, cols = torch.nonzero(x > 0, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20, "the line fills the 20-pixel box top to bottom"
    centre = (x.double() * torch.arange(28.0)[None, :]).sum() / x.double().sum()
    assert abs(centre - 14) < 1, "centred by mass"
    again = lesson["read_digit"](drawpad.render([[(140, 40), (140, 240)]]), model)
    assert again["top3"] == reading["top3"]
