"""A hold-out set of real, non-MNIST handwritten digits in assorted file formats, made on the fly.

Generated with a fixed seed (``--seed``, default 0).

Source: scikit-learn's bundled ``load_digits`` (1,797 digits by 13 writers of the UCI set, 8×8
counts of ink per 4×4 block of a 32×32 bitmap). Each digit is upscaled (bicubic) and
soft-thresholded into a pen stroke, then degraded the way photos and scans of handwriting are:
either polarity, tinted ink and paper, margins and sizes, slight rotation, blur, noise, JPEG
compression, a thin box or border line, a dust speck, 8-bit, 16-bit and 12-bit-in-16-bit PNG, GIF,
BMP and TIFF. The first half (indices < 899) is for tuning the preprocessing, the second half for
reporting. Usage::

    PYTHONPATH=$PWD .venv/bin/python tests/handwriting_set.py CHECKPOINT [--half tune|report|all]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TUNE_END = 899
"""Digits [0, 899) tune the preprocessing; [899, 1797) report its accuracy."""


def _stroke(counts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """8×8 ink counts (0–16) → float ink [size, size] in [0, 1]: bicubic upscale, soft threshold,
    slight rotation."""
    up = Image.fromarray((counts / 16.0).astype(np.float32), "F").resize(
        (size, size), Image.Resampling.BICUBIC
    )
    level = rng.uniform(0.3, 0.5)
    ink = np.clip((np.asarray(up) - level) / 0.2 + 0.5, 0.0, 1.0)
    angle = rng.uniform(-10, 10)
    return np.asarray(
        Image.fromarray(ink.astype(np.float32), "F").rotate(
            angle, Image.Resampling.BILINEAR, expand=True
        )
    )


def _canvas(
    ink: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Place the ink on a larger field with random margins; return (field, digit box as left, top,
    right, bottom)."""
    h, w = ink.shape
    top, bottom, left, right = (int(rng.uniform(0.05, 0.8) * max(h, w)) for _ in range(4))
    field = np.zeros((h + top + bottom, w + left + right))
    field[top : top + h, left : left + w] = ink
    return field, (left, top, left + w, top + h)


def _extras(
    field: np.ndarray, box: tuple[int, int, int, int], kind: str, rng: np.random.Generator
) -> np.ndarray:
    """Add a thin box around the digit, a thin line along the image border, or a dust speck in a
    corner."""
    image = Image.fromarray((field * 255).astype(np.uint8), "L")
    draw, (w, h) = ImageDraw.Draw(image), image.size
    width = int(rng.integers(1, 3))
    if kind == "box":
        pad = int(rng.integers(2, 10))
        draw.rectangle(
            (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), outline=255, width=width
        )
    elif kind == "border":
        side = rng.integers(4)
        xy = [(0, 0, w, width), (0, h - width, w, h), (0, 0, width, h), (w - width, 0, w, h)][side]
        draw.rectangle(xy, fill=255)
    elif kind == "speck":
        r = max(1, int(rng.integers(2, 4) * max(w, h) / 100))
        x, y = (int(rng.uniform(0.02, 0.12) * w), int(rng.uniform(0.02, 0.12) * h))
        x, y = (w - x if rng.random() < 0.5 else x), (h - y if rng.random() < 0.5 else y)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(image, np.float64) / 255.0


def _colour(ink: np.ndarray, dark_on_light: bool, rng: np.random.Generator) -> np.ndarray:
    """Ink map → float RGB [H, W, 3] in [0, 1] with tinted paper and ink of either polarity."""
    light = rng.uniform(0.65, 1.0, 3)
    dark = rng.uniform(0.0, 0.3, 3)
    paper, pen = (light, dark) if dark_on_light else (dark, light)
    return paper + ink[..., None] * (pen - paper)


def degraded_image(
    counts: np.ndarray, rng: np.random.Generator
) -> tuple[Image.Image, str, str, Image.Image]:
    """One digit as a degraded Pillow image; returns (image, file suffix, description, the clean
    stroke white on black)."""
    ink = _stroke(counts, int(rng.integers(16, 160)), rng)
    clean = Image.fromarray((ink * 255).round().astype(np.uint8), "L")
    field, box = _canvas(ink, rng)
    extra = rng.choice(["none", "none", "none", "box", "border", "speck"])
    field = _extras(field, box, extra, rng)
    rgb = _colour(field, bool(rng.random() < 0.5), rng)
    if rng.random() < 0.3:
        sigma = rng.uniform(0.01, 0.08)
        rgb = rgb + rng.normal(0, sigma, rgb.shape)
    rgb = np.clip(rgb, 0, 1)
    image = Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    fmt = rng.choice(["png", "jpg", "jpg", "png16", "png12", "gif", "bmp", "tif"])
    if fmt in ("png16", "png12"):
        top = 65535 if fmt == "png16" else 4095
        gray = np.asarray(image.convert("L"), np.float64) / 255.0
        image = Image.fromarray((gray * top).round().astype("<u2"))  # mode I;16
    elif fmt == "gif":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return image, {"png16": ".png", "png12": ".png"}.get(fmt, f".{fmt}"), f"{fmt}/{extra}", clean


def write_set(folder: Path, seed: int = 0) -> list[tuple[Path, int, str, Image.Image]]:
    """Write every digit as one degraded file into ``folder``; return (path, label, description,
    clean stroke) each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = []
    for i, (counts, label) in enumerate(zip(digits.images, digits.target)):
        image, suffix, desc, clean = degraded_image(counts, rng)
        path = folder / f"{i:04d}_label{label}{suffix}"
        quality = {"quality": int(rng.integers(30, 90))} if suffix == ".jpg" else {}
        image.save(path, **quality)
        out.append((path, int(label), desc, clean))
    return out


def evaluate(checkpoint: Path, half: str = "report", seed: int = 0) -> dict:
    """Accuracy of ``load_image`` + ``preprocess`` + the model on one half of the set (refused files
    count as errors), of the same model on the clean strokes (white on black, no degradation: the
    ceiling), and their agreement."""
    import torch

    from mnist_tools import choice, images, photo
    from mnist_utils import digits

    model = choice.load_default(checkpoint)[0]
    with tempfile.TemporaryDirectory() as tmp:
        items = write_set(Path(tmp), seed)
        lo, hi = {"tune": (0, TUNE_END), "report": (TUNE_END, len(items)), "all": (0, len(items))}[
            half
        ]
        wrong, refused, by_kind = Counter(), Counter(), Counter()
        batch, labels, clean = [], [], []
        for path, label, desc, stroke in items[lo:hi]:
            by_kind[desc] += 1
            clean.append(photo.preprocess(stroke))
            try:
                batch.append(photo.preprocess(images.load_image(path)))
                labels.append((label, desc, len(clean) - 1))
            except images.ImageError:
                refused[desc] += 1
        pred = digits.predict_images(model, torch.stack(batch)).argmax(1).tolist()
        ceiling = digits.predict_images(model, torch.stack(clean)).argmax(1).tolist()
        agree = 0
        for p, (label, desc, i) in zip(pred, labels):
            wrong[desc] += p != label
            agree += p == ceiling[i]
    n = hi - lo
    errors = sum(wrong.values()) + sum(refused.values())
    correct_clean = sum(c == item[1] for c, item in zip(ceiling, items[lo:hi]))
    return {
        "half": half,
        "images": n,
        "accuracy": 1 - errors / n,
        "clean_accuracy": correct_clean / n,
        "agreement": agree / n,
        "wrong": dict(wrong),
        "refused": dict(refused),
        "by_kind": dict(by_kind),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the accuracy on one half, with errors by format/extra."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--half", choices=["tune", "report", "all"], default="report")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = evaluate(args.checkpoint, args.half, args.seed)
    print(
        f"{r['half']} half: {r['images']} files, accuracy {100 * r['accuracy']:.2f} % (clean "
        f"strokes: {100 * r['clean_accuracy']:.2f} %; same digit as on the clean stroke: "
        f"{100 * r['agreement']:.2f} %)"
    )
    for kind in sorted(r["by_kind"]):
        w, f = r["wrong"].get(kind, 0), r["refused"].get(kind, 0)
        if w or f:
            print(f"  {kind:<14} {r['by_kind'][kind]:4d} images: {w} wrong, {f} refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
