"""A photo-like set: MNIST test digits on paper, photographed, made on the fly (fixed seed).

Each MNIST test digit is upscaled into a pen or pencil stroke and put on a sheet of paper with a
fibre texture: plain, ruled (with a margin line at times) or squared, lit unevenly (a linear
gradient, a soft shadow, vignetting), then "photographed": slight tilt of the lines, camera blur,
sensor noise, JPEG, 8- or 16-bit. Two more kinds must be refused rather than read: blank pages
(noise, a speck, lines, uneven light; 8-bit, 16-bit and float TIFF) and images with two digits side
by side ("38", "1 4"). Digits come from test indices < 5000 for the "tune" half and from the rest
for the "report" half. Usage::

    PYTHONPATH=$PWD .venv/bin/python tests/photo_set.py CHECKPOINT [--half tune|report]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

KINDS = (
    "plain",
    "ruled",
    "squared",
    "gradient",
    "shadow",
    "vignette",
    "phone",
    "blank",
    "two_digits",
)
"""Kinds of photo; the last two hold no single digit and must be refused."""
REFUSE = ("blank", "two_digits")
SPLIT = 5000
"""MNIST test digits [0, 5000) make the tune half, [5000, 10000) the report half."""


def _stroke(digit: np.ndarray, height: int) -> np.ndarray:
    """A 28×28 MNIST digit → float ink [~height, w] in [0, 1]: cropped, upscaled (bicubic),
    soft-thresholded."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255
    scale = height / crop.shape[0]
    size = (max(2, round(crop.shape[1] * scale)), height)
    up = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BICUBIC))
    return np.clip((up - 0.45) / 0.25 + 0.5, 0.0, 1.0)


def _paper(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Paper reflectance [H, W] around 0.8–0.95: a fibre texture of smoothed noise and fine
    grain."""
    fibre = ndimage.gaussian_filter(rng.normal(0, 1, shape), rng.uniform(1, 4))
    fibre /= fibre.std() + 1e-9
    return rng.uniform(0.8, 0.95) + rng.uniform(0.005, 0.025) * fibre


def _lines(
    shape: tuple[int, int], spacing: float, rng: np.random.Generator, grid: bool
) -> np.ndarray:
    """Printed lines (ink in [0, 1]) of ruled or squared paper, slightly tilted as in a hand-held
    photo."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = np.deg2rad(rng.uniform(-1.5, 1.5))
    width = rng.uniform(0.8, 2.5) * max(h, w) / 600
    strength = rng.uniform(0.35, 0.9)

    def family(coord: np.ndarray) -> np.ndarray:
        offset = rng.uniform(0, spacing)
        distance = np.abs((coord - offset + spacing / 2) % spacing - spacing / 2)
        return np.clip(width / 2 + 0.5 - distance, 0, 1)

    lines = family(yy * np.cos(angle) - xx * np.sin(angle))
    if grid:
        lines = np.maximum(lines, family(xx * np.cos(angle) + yy * np.sin(angle)))
    elif rng.random() < 0.3:  # the margin line of a notebook page
        x0 = rng.uniform(0.05, 0.2) * w
        lines = np.maximum(
            lines, np.clip(width / 2 + 0.5 - np.abs(xx - x0 - yy * np.tan(angle)), 0, 1)
        )
    return strength * lines


def _light(shape: tuple[int, int], kind: str, rng: np.random.Generator) -> np.ndarray:
    """Illumination [H, W] with a maximum of about 1: even, a linear gradient, a soft shadow or
    vignetting."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(theta) + yy * np.sin(theta)
        ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
        return 1 - rng.uniform(0.2, 0.5) * ramp
    if kind == "shadow":
        theta = rng.uniform(0, 2 * np.pi)
        edge = (xx - rng.uniform(0.2, 0.8) * w / max(h, w)) * np.cos(theta) + (
            yy - rng.uniform(0.2, 0.8) * h / max(h, w)
        ) * np.sin(theta)
        soft = rng.uniform(0.01, 0.1)
        return 1 - rng.uniform(0.25, 0.5) / (1 + np.exp(-edge / soft))
    if kind == "vignette":
        r2 = (xx - xx.mean()) ** 2 + (yy - yy.mean()) ** 2
        return 1 - rng.uniform(0.25, 0.5) * r2 / r2.max()
    return np.full(shape, rng.uniform(0.85, 1.0))


def _page(
    shape: tuple[int, int], kind: str, rng: np.random.Generator, spacing: float
) -> np.ndarray:
    """Paper reflectance with any printed lines of the kind (phone and blank pages pick one at
    random)."""
    paper = _paper(shape, rng)
    ruling = {"ruled": "ruled", "squared": "squared"}.get(kind, "plain")
    if kind in ("phone", "blank", "two_digits"):
        ruling = rng.choice(["plain", "ruled", "squared"])
    if ruling != "plain":
        paper = paper * (1 - 0.7 * _lines(shape, spacing, rng, ruling == "squared"))
    return paper


def _photo(reflect: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """What the camera records: light × reflectance, blur, sensor noise."""
    light_kind = kind if kind in ("gradient", "shadow", "vignette") else "even"
    if kind in ("phone", "blank", "two_digits"):
        light_kind = rng.choice(["even", "gradient", "shadow", "vignette"])
    image = reflect * _light(reflect.shape, light_kind, rng)
    blur = rng.uniform(0.3, 1.0 if kind != "phone" else 2.0) * max(reflect.shape) / 500
    image = ndimage.gaussian_filter(image, blur)
    return np.clip(image + rng.normal(0, rng.uniform(0.003, 0.02), image.shape), 0, 1)


def photo(digits: list[np.ndarray], kind: str, rng: np.random.Generator) -> np.ndarray:
    """Digits (none for a blank page) written side by side on paper of ``kind`` and photographed →
    gray [H, W]."""
    long_side = int(rng.integers(240, 900))
    h, w = (
        (long_side, int(long_side * rng.uniform(0.75, 1)))
        if rng.random() < 0.5
        else (int(long_side * rng.uniform(0.75, 1)), long_side)
    )
    height = int(min(h, w) * rng.uniform(0.3, 0.6))
    strokes = [_stroke(d, height) for d in digits]
    gaps = [int(height * rng.uniform(-0.05, 0.35)) for _ in strokes[1:]]
    total = sum(s.shape[1] for s in strokes) + sum(gaps)
    if total > 0.9 * w:
        scale = 0.9 * w / total
        strokes = [_stroke(d, max(8, int(height * scale))) for d in digits]
        gaps = [int(g * scale) for g in gaps]
        total = sum(s.shape[1] for s in strokes) + sum(gaps)
    ink = np.zeros((h, w))
    if strokes:
        top = int(rng.integers(0, h - strokes[0].shape[0]))
        left = int(rng.integers(0, max(1, w - total)))
        for stroke, gap in zip(strokes, [0, *gaps], strict=True):
            left += gap
            piece = ink[top : top + stroke.shape[0], left : left + stroke.shape[1]]
            piece[...] = np.maximum(piece, stroke[: piece.shape[0], : piece.shape[1]])
            left += stroke.shape[1]
    # pen, or pencil
    pen = rng.uniform(0.05, 0.25) if rng.random() < 0.7 else rng.uniform(0.35, 0.6)
    reflect = _page((h, w), kind, rng, spacing=height * rng.uniform(0.5, 1.0)) * (
        1 - (1 - pen) * ink
    )
    if kind == "blank" and rng.random() < 0.5:  # a speck of dust or a dot of ink
        y, x, r = int(rng.integers(0, h)), int(rng.integers(0, w)), rng.uniform(1, 4)
        yy, xx = np.ogrid[0:h, 0:w]
        reflect = np.where((yy - y) ** 2 + (xx - x) ** 2 <= r * r, reflect * pen, reflect)
    return _photo(reflect, kind, rng)


def save(gray: np.ndarray, path: Path, rng: np.random.Generator, kind: str) -> Path:
    """Write the photo as JPEG (mostly), PNG, 16-bit PNG or (blank pages) float TIFF; return the
    path written."""
    fmt = rng.choice(["jpg", "jpg", "jpg", "png", "png16"] + (["tif"] if kind == "blank" else []))
    if fmt == "png16":
        path = path.with_suffix(".png")
        Image.fromarray((gray * rng.choice([4095, 65535])).round().astype("<u2")).save(path)
    elif fmt == "tif":
        path = path.with_suffix(".tif")
        Image.fromarray(gray.astype(np.float32), "F").save(path)
    else:
        path = path.with_suffix(f".{fmt}")
        rgb = np.clip(gray[..., None] * rng.uniform(0.9, 1.0, 3) / 1.0, 0, 1)  # a faint colour cast
        image = Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
        if fmt == "jpg":
            image.filter(ImageFilter.SHARPEN if rng.random() < 0.3 else ImageFilter.SMOOTH).save(
                path, quality=int(rng.integers(40, 90))
            )
        else:
            image.save(path)
    return path


def write_set(
    folder: Path, half: str = "report", per_kind: int = 40, seed: int = 0
) -> list[tuple[Path, int, str]]:
    """Write ``per_kind`` photos of each kind into ``folder``; return (path, label or -1 if refused,
    kind) each."""
    from mnist_utils import data, paths

    test = data.load_split(False, paths.ROOT / "data")
    rng = np.random.default_rng(seed + (0 if half == "tune" else 1))
    lo, hi = (0, SPLIT) if half == "tune" else (SPLIT, len(test.labels))
    out = []
    for i in range(per_kind * len(KINDS)):
        kind = KINDS[i % len(KINDS)]
        count = {"blank": 0, "two_digits": 2}.get(kind, 1)
        picks = rng.integers(lo, hi, count)
        gray = photo([test.images[int(j)].numpy() for j in picks], kind, rng)
        label = int(test.labels[int(picks[0])]) if count == 1 else -1
        out.append((save(gray, folder / f"{i:04d}_{kind}_label{label}", rng, kind), label, kind))
    return out


def evaluate(checkpoint: Path, half: str = "report", per_kind: int = 40, seed: int = 0) -> dict:
    """Per kind: images, correct (the right digit, or refused where nothing should be read),
    refused, confident wrong answers to blank/two-digit images (probability ≥ 0.5)."""

    from mnist_tools import choice, images, photo
    from mnist_utils import digits

    model = choice.load_default(checkpoint)[0]
    total, correct, refused, confident = Counter(), Counter(), Counter(), Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for path, label, kind in write_set(Path(tmp), half, per_kind, seed):
            total[kind] += 1
            try:
                x = photo.preprocess(images.load_image(path))
            except images.ImageError:
                refused[kind] += 1
                correct[kind] += label < 0
                continue
            probs = digits.predict_images(model, x[None])[0]
            correct[kind] += label >= 0 and int(probs.argmax()) == label
            confident[kind] += label < 0 and float(probs.max()) >= 0.5
    return {
        "half": half,
        "total": dict(total),
        "correct": dict(correct),
        "refused": dict(refused),
        "confident_wrong": dict(confident),
        "accuracy": sum(correct.values()) / sum(total.values()),
        "digit_accuracy": sum(correct[k] for k in total if k not in REFUSE)
        / sum(total[k] for k in total if k not in REFUSE),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the score on one half, by kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--half", choices=["tune", "report"], default="report")
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = evaluate(args.checkpoint, args.half, args.per_kind, args.seed)
    n = sum(r["total"].values())
    print(
        f"{r['half']} half: {n} photos, score {100 * r['accuracy']:.2f} % "
        f"(single digits read right: {100 * r['digit_accuracy']:.2f} %)"
    )
    for kind in KINDS:
        t, c = r["total"].get(kind, 0), r["correct"].get(kind, 0)
        print(
            f"  {kind:<11} {t:4d} images: {c:4d} right, {r['refused'].get(kind, 0):3d} refused, "
            f"{r['confident_wrong'].get(kind, 0):3d} confident answers where none is right"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
