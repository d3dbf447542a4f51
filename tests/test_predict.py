"""MNIST-style preprocessing of your own images, image loading errors, and the `predict` command line."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from mnist_utils import predict
from mnist_utils.__main__ import main as cli_main


def draw_seven(canvas=(200, 160), size=100, pos=(40, 20), ink=255, paper=0) -> Image.Image:
    """A "7" in the default font, grayscale."""
    image = Image.new("L", canvas, paper)
    ImageDraw.Draw(image).text(pos, "7", fill=ink, font=ImageFont.load_default(size=size))
    return image


def draw_zero(canvas=(200, 200), box=(50, 30, 130, 170), width=14, ink=255, paper=0) -> Image.Image:
    """A ring shaped like a "0", grayscale."""
    image = Image.new("L", canvas, paper)
    ImageDraw.Draw(image).ellipse(box, outline=ink, width=width)
    return image


def as_mode(image: Image.Image, mode: str) -> Image.Image:
    """The grayscale drawing in another mode; RGBA keeps only the ink opaque (transparent background)."""
    if mode == "RGBA":
        ink = np.asarray(image)
        dark_on_light = np.median(ink) > 127
        alpha = (255 - ink) if dark_on_light else ink
        rgba = np.zeros(ink.shape + (4,), np.uint8)
        rgba[..., :3] = 0 if dark_on_light else 255
        rgba[..., 3] = alpha
        return Image.fromarray(rgba, "RGBA")
    if mode == "I;16":
        return Image.fromarray(np.asarray(image).astype("<u2") * 257)  # 16-bit, full 0–65535 range
    return image.convert(mode)


def centre_of_mass(t: torch.Tensor) -> tuple[float, float]:
    """(row, column) centre of mass of a [28, 28] image."""
    x = t.double()
    r = torch.arange(28, dtype=torch.float64)
    return (x.sum(1) @ r / x.sum()).item(), (x.sum(0) @ r / x.sum()).item()


def aligned_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference (0–255) after the best shift of at most one pixel (centring rounds to whole pixels)."""
    a, b = a.float(), b.float()
    return min((torch.roll(a, (dy, dx), (0, 1)) - b).abs().mean().item() for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def check_mnist_style(t: torch.Tensor) -> None:
    """uint8 [28, 28], ink inside a 20×20 box in the frame, centre of mass within 1 px of (14, 14)."""
    assert t.dtype == torch.uint8 and t.shape == (28, 28)
    rows, cols = torch.nonzero(t, as_tuple=True)
    assert rows.max() - rows.min() + 1 <= 20 and cols.max() - cols.min() + 1 <= 20
    assert t.max() == 255 and t[0].sum() == t[-1].sum() == t[:, 0].sum() == t[:, -1].sum() == 0
    cy, cx = centre_of_mass(t)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "P", "1"])
@pytest.mark.parametrize("dark_on_light", [False, True])
def test_every_mode_and_polarity_gives_the_same_mnist_style_digit(mode, dark_on_light):
    reference = predict.preprocess(draw_seven())
    drawing = draw_seven(ink=0, paper=255) if dark_on_light else draw_seven()
    out = predict.preprocess(as_mode(drawing, mode))
    check_mnist_style(out)
    assert aligned_diff(out, reference) < (12 if mode == "1" else 3)  # mode "1" loses the anti-aliasing


@pytest.mark.parametrize("draw, variants", [
    (draw_seven, [dict(canvas=(400, 300), size=200, pos=(100, 10)), dict(size=60, pos=(5, 5)),
                  dict(canvas=(60, 60), size=40, pos=(12, 2)), dict(ink=40, paper=210)]),
    (draw_zero, [dict(canvas=(400, 400), box=(100, 60, 260, 340), width=28),
                 dict(canvas=(300, 260), box=(150, 20, 270, 230), width=21), dict(ink=0, paper=255)]),
])
def test_position_size_and_contrast_do_not_matter(draw, variants):
    reference = predict.preprocess(draw())
    check_mnist_style(reference)
    for kw in variants:
        out = predict.preprocess(draw(**kw))
        check_mnist_style(out)
        assert aligned_diff(out, reference) < 6, kw


def test_digits_stay_distinguishable():
    assert aligned_diff(predict.preprocess(draw_seven()), predict.preprocess(draw_zero())) > 20


def test_wide_digit_fills_the_width_and_keeps_its_aspect_ratio():
    image = Image.new("L", (300, 100), 0)
    ImageDraw.Draw(image).rectangle((20, 40, 280, 60), fill=255)  # a 13:1 bar
    out = predict.preprocess(image)
    rows, cols = torch.nonzero(out, as_tuple=True)
    assert cols.max() - cols.min() + 1 == 20 and rows.max() - rows.min() + 1 <= 3
    check_mnist_style(out)


def test_real_mnist_digit_survives_preprocessing_nearly_unchanged(test_split):
    digit = test_split.images[0]
    out = predict.preprocess(Image.fromarray(digit.numpy(), "L"))
    check_mnist_style(out)
    assert aligned_diff(out, digit) < 12


@pytest.mark.parametrize("image", [Image.new("L", (50, 50), 0), Image.new("RGB", (50, 50), "white"),
                                   Image.new("RGBA", (50, 50), (0, 0, 0, 0)), Image.new("L", (0, 0))],
                         ids=["black", "white", "transparent", "zero-size"])
def test_blank_image_is_refused(image):
    with pytest.raises(predict.PredictError, match="blank|zero size"):
        predict.preprocess(image)


def test_load_image_reports_missing_non_image_and_huge_files(tmp_path, monkeypatch):
    with pytest.raises(predict.PredictError, match="no such file") as err:
        predict.load_image(tmp_path / "nope.png")
    assert "nope.png" in str(err.value)
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a picture")
    with pytest.raises(predict.PredictError, match="not an image") as err:
        predict.load_image(fake)
    assert "fake.png" in str(err.value)
    good = tmp_path / "seven.png"
    draw_seven().save(good)
    assert predict.load_image(good).size == (200, 160)
    monkeypatch.setattr(predict, "MAX_PIXELS", 10_000)
    with pytest.raises(predict.PredictError, match="megapixel limit") as err:
        predict.load_image(good)
    assert "seven.png" in str(err.value)


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "cut.png"
    draw_seven().save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(predict.PredictError, match="cut.png"):
        predict.load_image(path)


def test_cli_predicts_good_files_and_reports_the_bad_one(tmp_path, tiny_checkpoint, test_split, capsys):
    files = []
    for i in (0, 1):
        path = tmp_path / f"digit_{i}_label_{int(test_split.labels[i])}.png"
        Image.fromarray(255 - test_split.images[i].numpy(), "L").convert("RGB").save(path)  # as if drawn on paper
        files.append(str(path))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out_json = tmp_path / "out" / "predictions.json"
    code = cli_main(["predict", *files, str(bad), "--checkpoint", str(tiny_checkpoint), "--json", str(out_json)])
    stdout, stderr = capsys.readouterr()
    assert code == 1
    lines = stdout.strip().splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, files):
        assert line.startswith(f"{name}: ")
        top3 = re.findall(r"\b(\d):([01]\.\d{3})\b", line[len(name):])
        assert len(top3) == 3 and line[len(name) + 2] == top3[0][0]  # predicted digit, then d:prob three times
    assert stderr.startswith(f"error: {bad}:") and "not an image" in stderr and "Traceback" not in stderr
    results = json.loads(out_json.read_text())
    assert [r["file"] for r in results] == [*files, str(bad)]
    assert set(results[2]) == {"file", "error"}
    for r in results[:2]:
        assert set(r) == {"file", "prediction", "top3"} and r["prediction"] == r["top3"][0][0]
        assert len(r["top3"]) == 3 and 0 < r["top3"][2][1] <= r["top3"][1][1] <= r["top3"][0][1] <= 1


def test_real_test_digits_are_left_almost_unchanged_and_predicted_alike(tiny_checkpoint, test_split):
    raw = test_split.images[:200]
    pre = torch.stack([predict.preprocess(Image.fromarray(im.numpy(), "L")) for im in raw])
    assert (pre.float() - raw.float()).abs().mean() < 1.0  # MNIST digits are already in this form (0–255 scale)
    model = predict.load_predictor(tiny_checkpoint)
    probs = predict.predict_images(model, pre)
    assert probs.shape == (200, 10) and torch.allclose(probs.sum(1), torch.ones(200), atol=1e-5)
    assert (probs.argmax(1) == predict.predict_images(model, raw).argmax(1)).float().mean() >= 0.95


def test_cli_with_missing_or_alien_checkpoint_exits_2_and_names_the_fix(tmp_path, capsys):
    image = tmp_path / "seven.png"
    draw_seven().save(image)
    code = predict.main([str(image), "--checkpoint", str(tmp_path / "missing.pt")])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert "make run-all" in stderr and "missing.pt" in stderr and "Traceback" not in stderr
    alien = tmp_path / "alien.pt"
    torch.save({"model": {}, "config": {"name": "x", "optimiser": "sgd"}}, alien)  # a field this version does not know
    assert predict.main([str(image), "--checkpoint", str(alien)]) == 2
    stderr = capsys.readouterr().err
    assert "incompatible" in stderr and "make run-all" in stderr and "Traceback" not in stderr


def test_cli_all_good_exits_0(tmp_path, tiny_checkpoint, capsys):
    image = tmp_path / "seven.png"
    draw_seven(ink=0, paper=255).save(image)
    assert predict.main([str(image), "--checkpoint", str(tiny_checkpoint)]) == 0
    assert capsys.readouterr().out.startswith(str(image))


def test_unknown_command_prints_usage_and_exits_2(capsys):
    assert cli_main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert cli_main([]) == 2
    assert "predict" in capsys.readouterr().err
