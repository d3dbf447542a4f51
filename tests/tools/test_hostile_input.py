"""What careless or hostile input does to the tools: text from file names never reaches make's
expansion, no image frame escapes the pixel cap, names print on one line, results never replace a
user's file, damaged or odd images are refused or read right, a model at chance is flagged."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from mnist_tools import choice, export, images, lab, predict
from mnist_tools.__main__ import main as cli_main
from mnist_utils import checkpoints, errors, paths

ROOT = paths.ROOT


def seven(mode: str = "L", ink=255, paper=0, size=(120, 120)) -> Image.Image:
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).text((30, 5), "7", fill=ink, font=ImageFont.load_default(size=100))
    return image


@pytest.mark.parametrize("target", ["help", "predict"])
def test_text_in_a_file_name_never_reaches_make(tmp_path, target):
    hostile = tmp_path / "x$(shell touch pwned).png"
    hostile.write_bytes(b"")
    for how in ("environment", "command line"):
        env = dict(os.environ) | ({"IMG": str(hostile)} if how == "environment" else {})
        line = [] if how == "environment" else [f"IMG={hostile}"]
        command = ["make", "-s", "-n", "-o", ".venv/.installed", target, *line]
        subprocess.run(
            command, cwd=tmp_path.parent if False else ROOT, env=env, capture_output=True
        )
        assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists(), how
    command = ["make", "-s", "help", "NB=$(shell touch pwned2)", "PROFILE=$(shell touch pwned3)"]
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
    assert not (ROOT / "pwned2").exists() and not (ROOT / "pwned3").exists()


def test_every_frame_of_a_multi_page_tiff_is_capped_before_it_is_decoded(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    path = tmp_path / "pages.tif"
    seven(size=(60, 60)).save(path, save_all=True, append_images=[Image.new("L", (400, 400))])
    with pytest.raises(images.ImageError, match=r"frame 2\) is 400×400 .* over the 0.01-megapixel"):
        images.load_image(path)


def test_a_file_name_with_a_newline_is_one_line_of_output(tmp_path, tiny_checkpoint, capsys):
    path = tmp_path / "two\nlines.png"
    seven().save(path)
    assert cli_main(["predict", str(path), "--checkpoint", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "two\\nlines.png: " in out


def test_json_output_never_replaces_an_input_image_or_a_file_that_is_not_json(tmp_path, capsys):
    image = tmp_path / "a.png"
    seven().save(image)
    before = image.read_bytes()
    assert cli_main(["predict", "--json", str(image), str(image)]) == 1  # `--json scans/*.png`
    assert image.read_bytes() == before and "is one of the images" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert cli_main(["predict", "--json", str(notes), str(image)]) == 1
    assert notes.read_text() == "my notes\n" and "not a JSON file" in capsys.readouterr().err


def test_ctrl_c_during_predict_reports_and_writes_what_was_read(
    tmp_path, tiny_checkpoint, monkeypatch, capsys
):
    names = [tmp_path / f"{k}.png" for k in range(3)]
    for name in names:
        seven().save(name)
    read, seen = predict.read, []

    def interrupted(name):
        seen.append(name)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return read(name)

    monkeypatch.setattr(predict, "read", interrupted)
    out = tmp_path / "out.json"
    argv = [*map(str, names), "--checkpoint", str(tiny_checkpoint), "--json", str(out)]
    assert cli_main(["predict", *argv]) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 of 3 images" in err and "Traceback" not in err
    assert [r["file"] for r in json.loads(out.read_text())] == list(map(str, names[:2]))


def test_a_damaged_jpeg_is_refused_not_read_as_colour_noise(tmp_path):
    path = tmp_path / "digit.jpg"
    seven().convert("RGB").save(path, quality=90)
    assert images.jpeg_intact(path)
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(200)
    path.write_bytes(bytes(data))
    with pytest.raises(images.ImageError, match="damaged JPEG"):
        images.load_image(path)


def test_a_32_bit_tiff_of_large_integers_is_read_by_its_range(tmp_path):
    values = np.asarray(seven(), dtype=np.int32) * 1000  # 0..255000
    path = tmp_path / "deep.tif"
    Image.fromarray(values, mode="I").save(path)
    gray = images.to_gray(images.load_image(path))
    assert gray.max() > 0.9 and gray.min() == 0  # not a blank page


def test_a_white_digit_on_a_transparent_palette_image_reads_as_its_rgba_twin(tmp_path):
    rgba = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).text(
        (30, 5), "7", fill=(255, 255, 255, 255), font=ImageFont.load_default(size=100)
    )
    rgba.save(tmp_path / "rgba.png")
    rgba.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png", transparency=0)
    rgba.save(tmp_path / "digit.gif", transparency=0)
    from mnist_tools.photo import preprocess

    twin = preprocess(images.load_image(tmp_path / "rgba.png")).float()
    for name in ("palette.png", "digit.gif"):
        got = preprocess(images.load_image(tmp_path / name)).float()
        assert (got - twin).abs().mean() < 10, name  # the same digit, not an outline


def test_a_model_at_chance_is_flagged_by_predict_and_refused_by_export(
    tmp_path, tiny_checkpoint, capsys
):
    state = checkpoints.load(tiny_checkpoint)
    state["model"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}
    dead = tmp_path / "dead.pt"
    checkpoints.save(dead, state)
    image = tmp_path / "seven.png"
    seven().save(image)
    cli_main(["predict", str(image), "--checkpoint", str(dead)])
    assert "warning: the model reads only" in capsys.readouterr().err
    assert cli_main(["export", "--checkpoint", str(dead), "--out", str(tmp_path / "out")]) == 1
    assert "not exported" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert choice.sanity_warning(checkpoints.load_model(tiny_checkpoint)[0]) is None
    assert export.ExportError.__mro__[1] is errors.MnistError


def test_lab_names_the_notebooks_when_nb_is_not_one(capsys):
    assert lab.course_notebook("04_training").name == "04_training.ipynb"
    with pytest.raises(errors.MnistError, match="no course notebook 'bogus'.*01_data_exploration"):
        lab.course_notebook("bogus")
    with pytest.raises(errors.MnistError):
        lab.course_notebook("../README")
    assert cli_main(["lab", "--nb", "bogus"]) == 1 and capsys.readouterr().err.count("\n") == 1
    help_text = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True)
    assert "opening notebook NB (01_data_exploration)" in help_text.stdout


def test_a_malformed_ray_address_is_one_line(monkeypatch, capsys):
    from mnist_utils import study

    with pytest.raises(study.StudyError, match="cannot reach"):
        study.check_reachable("a..b:6379", timeout=1)


def test_mnist_digits_saved_as_png_are_read_exactly_as_the_tensors(tmp_path, test_split):
    from mnist_tools.photo import preprocess
    from mnist_utils import digits

    assert all(digits.in_mnist_format(x.numpy() / 255.0) for x in test_split.images)  # all 10,000
    for i, x in enumerate(test_split.images[:300]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(x.numpy()).save(path)
        assert torch.equal(preprocess(images.load_image(path)), x), i
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - test_split.images[0].numpy()).save(inverted)
    assert torch.equal(preprocess(images.load_image(inverted)), test_split.images[0])
    assert not digits.in_mnist_format(np.asarray(seven(), dtype=float) / 255)  # a photo: normalised
