"""Classify your own digit images: MNIST-style preprocessing (as LeCun et al. built the set) and the
`predict` CLI.

MNIST digits are bright on black, size-normalised to fit a 20×20 box (aspect ratio kept,
anti-aliased) and placed in a 28×28 field so that their centre of mass is at pixel (14, 14).
:func:`preprocess` does the same to any image.

Photos of paper are read in the same way once uneven light is divided out (:func:`flatten`) and the
lines of ruled or squared paper are painted over (:func:`remove_lines`); a blank page, a speck, an
image too small to hold a digit or one with more than one digit is refused with a one-line
:class:`PredictError`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from scipy import ndimage
from torch import nn

from . import engine, paths, runs
from .config import PROFILES, RunConfig

MAX_PIXELS = 40_000_000
"""Largest image (width × height) :func:`load_image` decodes; bigger ones are refused undecoded."""
MAX_FRAMES = 50
"""Frames of an animated GIF / multi-page TIFF that :func:`load_image` compares to find the one with
the digit."""

SIZE = 28
BOX = 20
INK_FRACTION = 0.1
"""Pixels near the digit's strokes with over this fraction of full ink make up its bounding box."""
MIN_CONTRAST = 0.25
"""An image whose ink is less than this (fraction of the paper's level; of full scale for light ink
on dark) above its background counts as blank. Digits in photos and scans stood 0.40 and more above
the paper (tests/photo_set.py, tests/handwriting_set.py, tune halves); paper texture, shadows and
ruling on blank pages, up to 0.22."""
MIN_SIDE, MIN_LONG_SIDE = 3, 8
"""Smaller images (either side, the long side, in pixels) are refused: they cannot hold a digit."""
MIN_SNR = 8.0
"""Ink must stand this many times the paper's noise (its robust spread, lightly smoothed) above the
paper."""
MIN_DIGIT = 0.04
"""The digit spans at least this fraction of the image's long side (and 4 pixels); smaller ink is a
speck."""
LINE_EDGE, LINE_THICK, LINE_MIN_SIZE = 0.05, 0.025, 64
"""A ruled or squared line runs to within LINE_EDGE of both edges and is at most LINE_THICK of the
image thick; smaller images than LINE_MIN_SIZE pixels are a tight crop of one digit, with no lines
to look for."""
OTHER_DIGIT = 0.15
"""A piece of ink beside the digit with this fraction of its ink and 60 % of its height is another
digit."""
WIDE, NECK, NECK_HEIGHT = 1.3, 1.5, 0.2
"""Ink WIDE times wider than tall, joined in its middle half by a single stroke at most NECK stroke
widths and NECK_HEIGHT of its height thick, with tall writing on both sides, is two touching digits
(tune halves: both touching pairs of the photo set refused; no digit of the handwriting set and
7 of MNIST's 10,000 test digits)."""
SOLID = 0.9
"""Ink filling this much of its box, and less than 2.5 times as long as wide, is a block, not
strokes: shadowed squares of a page filled 0.92-0.98 (photo set, tune half); the fattest "1" of the
handwriting set, 0.86."""
MAX_INK = 0.5
"""Ink is never the majority of a photo of a digit on paper: more is a shadow, a dark page or a
texture."""
WORK_SIZE = 1024
"""Larger images are first reduced (box average) to at most this many pixels on their long side."""
FRAGMENT_MASS, FRAGMENT_GAP = 0.1, 0.15
"""A separate piece of ink belongs to the digit (a broken stroke) when it has at least FRAGMENT_MASS
of the main stroke's ink and lies within FRAGMENT_GAP of the digit's size from it; smaller or
farther ones are specks."""


class PredictError(ValueError):
    """An image cannot be read or holds no digit; the message names the problem and the fix."""


def default_checkpoint() -> Path:
    """The best trained single model, chosen on validation, never on the test set: the highest
    recorded validation accuracy among the runs of the full and default profiles whose checkpoint
    exists (a run without a validation split, such as notebook 4's reference, only when no run has
    one; the quick profile's only when neither profile has a run); else where `make run-all` puts
    reference."""
    for profiles in (("full", "default"), ("quick",)):
        found = [
            (("val_accuracy" in entry, entry.get("val_accuracy", -1.0)), path)
            for profile in profiles
            for name, entry in runs.read_metrics(profile).items()
            if (path := paths.run_dir(name, profile) / engine.CHECKPOINT).is_file()
        ]
        if found:
            return max(found)[1]
    return paths.run_dir("reference", "default") / engine.CHECKPOINT


def load_default(checkpoint: Path | None = None) -> tuple[nn.Module, str]:
    """(the model of ``checkpoint`` or :func:`default_checkpoint` on the CPU, one line naming it:
    file, run, profile, and the test accuracy its metrics.json records)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, config, _ = engine.load_model(path, torch.device("cpu"))
    run, profile, metrics = (
        path.parent.name,
        path.parent.parent.name,
        path.parent.parent / "metrics.json",
    )
    try:
        entry = runs.read_json(metrics, {}).get(run, {})
    except runs.ArtifactError:
        entry = {}
    same = "config" in entry and RunConfig.from_dict(entry["config"]) == config
    score = (
        f"test accuracy {100 * entry['test_accuracy']:.2f} % in {metrics}"
        if same
        else "no test accuracy recorded for it"
    )
    note = (
        "; a smoke-test model (2,000 training images): train a real one with `make run-all`"
        if profile == "quick"
        else ""
    )
    where = f", profile {profile}" if profile in PROFILES else ""
    return model, f"model: {path} (run {config.name}{where}, {score}{note})"


def load_image(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file (EXIF rotation applied), refusing huge ones before
    decoding."""
    name, path = os.fspath(path), Path(path)
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        path.stat()
    except OSError as exc:
        problem = (
            "a symbolic link loop"
            if exc.errno == errno.ELOOP
            else "a symbolic link to a missing file"
            if path.is_symlink()
            else "no such file"
            if exc.errno == errno.ENOENT
            else exc.strerror
        )
        raise PredictError(f"{name}: {problem}; check the path.") from exc
    if not path.is_file():
        raise PredictError(f"{name}: not a regular file (a folder?); pass image files.")
    try:
        with warnings.catch_warnings():
            # our own cap below is stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > cap:
                    raise PredictError(
                        f"{name}: image is {width}×{height} = {width * height / 1e6:.1f} "
                        f"megapixels, over the {cap / 1e6:g}-megapixel limit; shrink or crop it "
                        "around the digit first."
                    )
                image.load()
                frames = getattr(image, "n_frames", 1)
                # animated GIF, multi-page TIFF: the frame with the most contrast holds the digit
                if frames > 1:
                    spread = [
                        np.nanstd(to_gray(frame))
                        for frame in islice(ImageSequence.Iterator(image), MAX_FRAMES)
                    ]
                    best = int(np.argmax(spread))
                    image.seek(best)
                    image.info["frame"] = f"frame {best + 1} of {frames}"
                return ImageOps.exif_transpose(image)
    except PredictError:
        raise
    except UnidentifiedImageError as exc:
        raise PredictError(
            f"{name}: not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise PredictError(
            f"{name}: refused as a decompression bomb ({exc}); shrink the image first."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PredictError(
            f"{name}: cannot read the image ({type(exc).__name__}: {exc}); is the file truncated "
            "or damaged?"
        ) from exc


def _alpha_composite(rgba: np.ndarray) -> np.ndarray:
    """Luminance of float RGBA [H, W, 4] in [0, 1], composited onto a background that contrasts with
    the opaque ink."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    weight = alpha[..., 0]
    if weight.sum() == 0:
        return luma
    ink_is_light = float((luma * weight).sum() / weight.sum()) > 0.5
    # dark ink on transparency -> white paper; light ink -> black
    background = 0.0 if ink_is_light else 1.0
    return luma * weight + background * (1 - weight)


def _real_range(values: np.ndarray, integer: bool) -> np.ndarray:
    """16/32-bit or float pixels → [0, 1] in absolute terms, so a blank page's noise stays faint:
    integers by the smallest full scale 2**k - 1 (k = 8…16, 24, 32) that holds them (12-bit data in
    a 16-bit file works), floats as they are when within [0, 1]; other data by its own min..max. NaN
    and ±Inf pixels stay NaN (background)."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    low, high = (
        (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    )
    if low >= 0 and (high <= 1 or integer):
        scales = (2.0**k - 1 for k in (*range(8, 17), 24, 32) if high <= 2**k - 1)
        top = next(scales, high) if integer else 1.0
        return np.where(finite, values / top, np.nan)
    return np.where(finite, (values - low) / (high - low) if high > low else 0.0, np.nan)


def to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → float64 grayscale [H, W] in [0, 1] (transparent pixels become
    background)."""
    mode = image.mode
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _real_range(
                np.asarray(image.convert("I") if mode.startswith("I;16") else image),
                integer=mode != "F",
            )
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            mode == "P" and "transparency" in image.info
        ):
            return _alpha_composite(np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0)
        rgb = (
            image
            if mode in ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
            else image.convert("RGB")
        )
        return np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
    except (ValueError, OSError) as exc:
        raise PredictError(
            f"image mode {mode!r} cannot be converted to grayscale ({exc}); save it as PNG first."
        ) from exc


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's global threshold: the level that best splits the histogram (over the values' range) in
    two classes."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return high
    hist, edges = np.histogram(values, bins=bins, range=(low, high))
    mids = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)
    above = below[-1] - below
    mass = np.cumsum(hist * mids)
    between = (
        below
        * above
        * (mass / np.maximum(below, 1) - (mass[-1] - mass) / np.maximum(above, 1)) ** 2
    )
    return float(edges[1 + int(np.argmax(between))])


def _resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float array to ``shape`` (rows, columns)."""
    image = Image.fromarray(values.astype(np.float32), "F")
    return np.asarray(image.resize(shape[::-1], Image.Resampling.BILINEAR), dtype=np.float64)


def level_out(gray: np.ndarray) -> np.ndarray:
    """The image less the light level of each part of the page (a median over half the image,
    computed small)."""
    factor = max(1, -(-max(gray.shape) // 64))
    small = Image.fromarray(gray.astype(np.float32), "F").reduce(factor)
    small = np.asarray(small, dtype=np.float64)
    # a dark frame is no paper
    level = ndimage.median_filter(
        small, size=max(1, min(small.shape) // 2), mode="constant", cval=float(np.median(small))
    )
    return gray - (_resize(level, gray.shape) if factor > 1 else level)


def flatten(gray: np.ndarray) -> np.ndarray:
    """Ink bright on black in [0, 1] relative to the paper under it, so uneven light (a gradient, a
    shadow, vignetting) is taken out: the paper is a grey closing (opening for light ink) wider than
    any stroke. The ink is dark when, once the light level is out, most pixels lie above Otsu's
    threshold (paper is the majority)."""
    flat = level_out(gray)
    above = flat >= otsu_threshold(flat)
    dark = bool(above.mean() > 0.5)
    strokes = ~above if dark else above
    stroke = float(ndimage.distance_transform_edt(strokes).max()) if strokes.any() else 0.0
    size = int(np.clip(6 * stroke + 3, min(gray.shape) / 4, min(gray.shape) / 2))
    padded = np.pad(gray, size, mode="edge")  # so light falling off towards an edge is followed too
    window = (slice(size, -size), slice(size, -size))
    if dark:  # light × reflectance: a ratio to the paper takes the light out
        paper = ndimage.grey_closing(padded, size=(size, size))[window]
        return np.clip(1.0 - gray / np.maximum(paper, 1e-3), 0.0, 1.0)
    return np.clip(gray - ndimage.grey_opening(padded, size=(size, size))[window], 0.0, 1.0)


def _contrast(ink: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(Otsu's ink pixels, paper level, ink level (90th percentile), robust spread of the paper) of
    a map."""
    strong = ink >= otsu_threshold(ink)
    if strong.all() or not strong.any():
        return strong, 0.0, 0.0, 0.0
    paper = ink[~strong]
    level = float(np.median(paper))
    spread = 1.4826 * float(np.median(np.abs(paper - level)))
    return strong, level, float(np.percentile(ink[strong], 90)), spread


def ink_map(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink rescaled to [0, 1]; the pixels above Otsu's threshold) of a flattened map, bright on
    black. Blank if the ink is less than MIN_CONTRAST above the paper or, after light smoothing,
    under MIN_SNR × its noise."""
    strong, background, ink_level, _ = _contrast(ink)
    _, paper, level, noise = _contrast(ndimage.gaussian_filter(ink, max(1.0, max(ink.shape) / 400)))
    if ink_level - background < MIN_CONTRAST or level - paper < MIN_SNR * noise:
        raise PredictError(
            "image is blank: no digit stands out from the background (draw it darker or bigger)."
        )
    return np.clip((ink - background) / (ink_level - background), 0.0, 1.0), strong


def _along(band: np.ndarray, thin: np.ndarray, tol: int) -> np.ndarray:
    """The pixels of a box within the line's own thickness of the straight line fitted through the
    centres of a band's thin columns ``thin`` (a band is the line widened by ``tol`` rows each
    side)."""
    rows = np.arange(band.shape[0])[:, None]
    depth = band[:, thin].sum(0)
    slope, offset = np.polyfit(thin, (band[:, thin] * rows).sum(0) / depth, 1)
    half = max(1.0, (float(np.median(depth)) - 2 * tol) / 2) + 1
    return np.abs(rows - (slope * np.arange(band.shape[1]) + offset)) <= half


def _row_lines(strong: np.ndarray) -> np.ndarray:
    """Pixels of long thin horizontal lines (ruled or squared paper, tilted by up to ~3°, broken by
    small gaps) that run from edge to edge: those within the line's thickness of a straight line
    fitted where the band is thin (a stroke lying along it or crossing it makes it thicker)."""
    h, w = strong.shape
    tol, gap = max(1, round(0.01 * w)), max(1, round(0.04 * w))
    window = (2 * tol + 1, 2 * gap + 1)
    thick = ndimage.maximum_filter(strong.view(np.uint8), size=window).astype(bool)
    runs, _ = ndimage.label(thick, structure=[[0, 0, 0], [1, 1, 1], [0, 0, 0]])
    long = thick & (np.bincount(runs.ravel())[runs] >= 0.3 * w + 2 * gap)
    bands, _ = ndimage.label(long, structure=np.ones((3, 3)))
    lines = np.zeros_like(strong)
    for k, box in enumerate(ndimage.find_objects(bands), start=1):
        if box[1].start > LINE_EDGE * w or box[1].stop < (1 - LINE_EDGE) * w:
            continue
        band = bands[box] == k
        depth = band.sum(0)
        thin = np.flatnonzero((depth > 0) & (depth <= 2 * tol + max(3.0, LINE_THICK * h)))
        if len(thin) >= 0.25 * np.count_nonzero(depth):  # thicker where a stroke meets the line
            lines[box] |= _along(band, thin, tol) & strong[box]
    return lines


def paper_lines(strong: np.ndarray) -> np.ndarray:
    """The pixels of the lines of ruled or squared paper, horizontal and vertical, less the strokes
    of the digit that cross them (ink right above and below a line, or left and right of it)."""
    rows, columns = _row_lines(strong), _row_lines(strong.T).T
    if not rows.any() and ndimage.label(columns, structure=np.ones((3, 3)))[1] == 1:
        columns[:] = False  # a lone upright line on plain paper is the digit 1
    lines = rows | columns
    rest = strong & ~lines
    for found, axis in ((rows, 0), (columns, 1)):
        if found.any():
            width = int(ndimage.distance_transform_edt(found).max())
            reach = 4 * width + round(0.02 * max(strong.shape)) + 3
            shape = (reach, 1) if axis == 0 else (1, reach)
            lines &= ~(found & ndimage.binary_closing(rest, structure=np.ones(shape)))
    return lines


def remove_lines(
    flat: np.ndarray, ink: np.ndarray, strong: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ink, ink pixels) of :func:`ink_map` once the lines of ruled or squared paper and their faint
    edges are painted over with paper, so the digit's contrast (or a blank page's) is measured
    without them."""
    lines = paper_lines(strong) if max(strong.shape) >= LINE_MIN_SIZE else np.zeros_like(strong)
    if not lines.any():
        return ink, strong
    zone, rest = ndimage.binary_dilation(lines, iterations=2), strong & ~lines
    labels, count = ndimage.label(rest, structure=np.ones((3, 3)))
    inside = np.asarray(ndimage.mean(zone, labels, range(1, count + 1))) if count else np.zeros(0)
    slivers = np.isin(labels, 1 + np.flatnonzero(inside > 0.8))  # bits of a line's edge go with it
    paper = float(np.median(flat[~strong]))
    return ink_map(np.where(lines | slivers | (zone & ~rest), paper, flat))


def _is_clutter(
    component: np.ndarray, others: np.ndarray, box: tuple[slice, slice], shape: tuple[int, int]
) -> bool:
    """A thin line along the image's edge, or a hollow box (3–4 sides drawn) around other ink."""
    height, width = component.shape
    at_edge = (
        box[0].start == 0 or box[0].stop == shape[0],
        box[1].start == 0 or box[1].stop == shape[1],
    )
    line = (at_edge[0] and width >= 0.3 * shape[1] and height <= width / 8) or (
        at_edge[1] and height >= 0.3 * shape[0] and width <= height / 8
    )
    dy, dx = max(2, height // 6), max(2, width // 6)
    inner = (slice(dy, -dy), slice(dx, -dx))
    if (
        line
        or height <= 4 * dy
        or width <= 4 * dx
        or component[inner].sum() > 0.02 * component.sum()
    ):
        return line
    sides = (
        component[:dy].any(0).mean(),
        component[-dy:].any(0).mean(),
        component[:, :dx].any(1).mean(),
        component[:, -dx:].any(1).mean(),
    )
    return sorted(sides)[1] >= 0.6 and bool(others[inner].any())


def _side_by_side(one: tuple[slice, slice], other: tuple[slice, slice]) -> bool:
    """Whether two boxes lie side by side as the digits of a number do: apart in columns, sharing
    most rows."""
    rows = min(one[0].stop, other[0].stop) - max(one[0].start, other[0].start)
    short = min(one[0].stop - one[0].start, other[0].stop - other[0].start)
    columns = min(one[1].stop, other[1].stop) - max(one[1].start, other[1].start)
    narrow = min(one[1].stop - one[1].start, other[1].stop - other[1].start)
    return columns <= 0.25 * narrow and rows >= 0.5 * short


def _one_digit(
    labels: np.ndarray, boxes: list, mass: np.ndarray, main: int, kept: list[int]
) -> None:
    """Refuse an image with more than one digit: a second large piece of ink beside the digit (not
    cut by the image's edge: that is a frame), or the digit's pieces side by side with a gap."""
    height = boxes[main][0].stop - boxes[main][0].start
    for k in np.flatnonzero(mass >= OTHER_DIGIT * mass[main]):
        rows, columns = (part.stop - part.start for part in boxes[k])
        tall = rows >= 0.6 * height and columns >= 0.1 * rows  # not a thin rule
        inside = not any(
            part.start == 0 and part.stop == size for part, size in zip(boxes[k], labels.shape)
        )  # a frame runs from edge to edge
        if k + 1 not in kept and tall and inside and _side_by_side(boxes[main], boxes[k]):
            raise PredictError(
                "more than one digit found (another piece of writing as large as "
                "the digit lies beside it); crop the image to a single digit."
            )
    groups, count = ndimage.label(np.isin(labels, kept).any(0))
    if count > 1:
        rows = [
            np.flatnonzero(np.isin(labels[:, groups == g], kept).any(1))
            for g in range(1, count + 1)
        ]
        spans = np.array([r[-1] - r[0] + 1 for r in rows])
        if (spans >= 0.5 * spans.max()).sum() > 1:
            raise PredictError(
                f"more than one digit found ({count} pieces side by side); crop the "
                "image to a single digit."
            )


def bounds(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the smallest box holding every True pixel of a non-empty map."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _touching(box: np.ndarray) -> bool:
    """Whether the ink of ``box`` (a boolean map cropped to its ink) is two digits joined by a thin
    stroke: wide, with a column in its middle half that crosses a single stroke no thicker than
    NECK strokes, and writing at least 60 % of its height tall on both sides."""
    height, width = box.shape
    if width < WIDE * height:
        return False
    edge = box & ~ndimage.binary_erosion(box)
    stroke = 2 * box.sum() / max(1, edge.sum())  # area / half the outline: a stroke's width
    if height < 3 * stroke:  # a bar, not writing
        return False
    starts = (box[1:] & ~box[:-1]).sum(0) + box[0]  # separate runs of ink down each column
    left = np.maximum.accumulate(box, axis=1)  # rows with ink in this column or left of it
    right = np.maximum.accumulate(box[:, ::-1], axis=1)[:, ::-1]
    thin = box.sum(0) <= min(NECK * stroke, NECK_HEIGHT * height)
    for c in np.flatnonzero((starts == 1) & thin):
        if width // 4 <= c < 3 * width // 4:
            spans = [np.ptp(np.flatnonzero(side)) + 1 for side in (left[:, c - 1], right[:, c + 1])]
            if min(spans) >= 0.6 * height:
                return True
    return False


def digit_mask(ink: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """The pixels of the digit: the heaviest connected stroke and the large pieces near it (a broken
    stroke), without boxes, border lines and specks; each faint (anti-aliased) pixel goes with the
    stroke nearest to it. Refuses a lone speck and more than one digit."""
    labels, count = ndimage.label(strong, structure=np.ones((3, 3)))
    boxes = ndimage.find_objects(labels)
    mass = np.asarray(ndimage.sum_labels(ink, labels, range(1, count + 1)))
    clutter = [
        k
        for k, box in enumerate(boxes)
        if _is_clutter(labels[box] == k + 1, strong[box] & (labels[box] != k + 1), box, ink.shape)
    ]
    if len(clutter) < count:  # never remove everything: a lone line is the digit 1
        mass[clutter] = 0
    main = int(np.argmax(mass))
    size = max(box.stop - box.start for box in boxes[main])
    if size < max(4, MIN_DIGIT * max(ink.shape)):
        raise PredictError(
            f"image is blank: the only ink is a speck {size} pixels across (a digit "
            f"must span {100 * MIN_DIGIT:g} % of the image); crop the image around "
            "the digit."
        )
    gap = ndimage.distance_transform_edt(labels != main + 1)
    reach = FRAGMENT_GAP * size
    kept = [
        k + 1
        for k in np.flatnonzero(mass >= FRAGMENT_MASS * mass[main])
        if gap[labels == k + 1].min() <= reach
    ]
    _one_digit(labels, boxes, mass, main, kept)
    writing = np.isin(labels, kept)
    writing = writing[bounds(writing)]
    if writing.mean() > SOLID and max(writing.shape) < 2.5 * min(writing.shape):
        raise PredictError(
            "no digit found: the ink is a solid block (a shadow or a smudge), not pen strokes; "
            "photograph the digit in even light."
        )
    if _touching(writing):
        raise PredictError(
            "more than one digit found (two pieces of writing joined by a thin stroke); crop the "
            "image to a single digit."
        )
    distance, nearest = ndimage.distance_transform_edt(~strong, return_indices=True)
    owner = labels[tuple(nearest)]
    return (
        (ink > INK_FRACTION) & np.isin(owner, kept) & (distance <= max(2.0, 0.02 * max(ink.shape)))
    )


def preprocess_array(gray: np.ndarray) -> torch.Tensor:
    """A float grayscale image [H, W] in [0, 1] of one digit, either polarity → uint8 [28, 28] as in
    MNIST."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.size == 0:
        raise PredictError("image has zero size; it holds no digit.")
    if gray.ndim != 2:
        raise PredictError(f"expected a 2-D grayscale array, got shape {gray.shape}.")
    if min(gray.shape) < MIN_SIDE or max(gray.shape) < MIN_LONG_SIDE:
        size = f"{gray.shape[1]}×{gray.shape[0]}"
        raise PredictError(
            f"image is only {size} pixels, too small to hold a digit; use one at "
            f"least {MIN_LONG_SIDE} pixels on its long side (MNIST's are 28)."
        )
    finite = np.isfinite(gray)
    if not finite.any():
        raise PredictError("image is blank: no pixel has a finite value.")
    gray = np.where(finite, gray, np.median(gray[finite]))  # NaN/Inf pixels count as background
    factor = -(-max(gray.shape) // WORK_SIZE)
    if (
        factor > 1
    ):  # a 20×20 digit needs no more: keeps a 40-megapixel photo fast and small in memory
        gray = np.asarray(
            Image.fromarray(gray.astype(np.float32), "F").reduce(factor), dtype=np.float64
        )
    flat = flatten(gray)
    ink, strong = remove_lines(flat, *ink_map(flat))
    if not strong.any():
        raise PredictError("image is blank: it holds only the lines of ruled or squared paper.")
    if strong.mean() > MAX_INK:
        raise PredictError(
            f"no digit found: {100 * strong.mean():.0f} % of the image reads as ink (a shadow, a "
            "dark page or a texture, not pen strokes); photograph the digit in even light."
        )
    mask = digit_mask(ink, strong)
    patch = fit_box((ink * mask)[bounds(mask)])
    field = place_centred(patch)
    return torch.from_numpy(np.rint(field * 255.0).clip(0, 255).astype(np.uint8))


def fit_box(ink: np.ndarray) -> np.ndarray:
    """Resize to fit the BOX×BOX square, aspect ratio kept, with Lanczos anti-aliasing; peak
    rescaled to 1."""
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, min(BOX, round(width * scale))), max(1, min(BOX, round(height * scale))))
    resized = np.asarray(
        Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    )
    resized = np.clip(resized.astype(np.float64), 0.0, None)
    peak = float(resized.max())
    if peak <= 0:
        raise PredictError(
            "image is blank after resizing: the digit is too thin to survive scaling to 20×20."
        )
    return np.clip(resized / peak, 0.0, 1.0)


def place_centred(patch: np.ndarray) -> np.ndarray:
    """Put ``patch`` in a SIZE×SIZE field so its centre of mass lands on pixel (SIZE/2, SIZE/2)."""
    offset = SIZE / 2 - np.array(ndimage.center_of_mass(patch))
    h, w = patch.shape  # halves round up, float noise ignored: symmetric shapes always shift alike
    top, left = np.clip(np.floor(offset + 0.5 + 1e-6), 0, [SIZE - h, SIZE - w]).astype(int)
    field = np.zeros((SIZE, SIZE))
    field[top : top + h, left : left + w] = patch
    return field


def preprocess(image: Image.Image) -> torch.Tensor:
    """Any Pillow image of one digit → uint8 [28, 28], bright on black, MNIST-normalised (20×20 box,
    centre of mass)."""
    return preprocess_array(to_gray(image))


def predict_images(model: nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28]."""
    return engine.predict_log_probs(model, images_u8).exp()


def top_k(probs: torch.Tensor, k: int = 3) -> list[list]:
    """The ``k`` most probable digits of one row as [[digit, probability], ...]."""
    values, digits = probs.topk(k)
    return [[int(d), float(p)] for d, p in zip(digits, values, strict=False)]


def main(argv: list[str] | None = None) -> int:
    """`predict IMAGE... [--checkpoint PATH] [--json OUT.json]`: exit 0 all ok, 1 an image failed, 2
    bad checkpoint."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_utils predict",
        description="Predict the digit in each image with a trained checkpoint.",
    )
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, one digit each (any colours, any size); "
        "put `--` before names starting with '-'",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint to use (default: the trained run with the best recorded validation "
        "accuracy, full or default profile)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT.json", help="also write the results as JSON"
    )
    args = parser.parse_args(argv)
    try:
        model, described = load_default(args.checkpoint)
    except (engine.CheckpointError, runs.ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(described, file=sys.stderr)
    results: list[dict] = [{"file": str(name)} for name in args.images]
    good: list[tuple[int, torch.Tensor]] = []
    for i, name in enumerate(args.images):
        try:
            image = load_image(name)
            good.append((i, preprocess(image)))
        except PredictError as exc:
            # load_image names the file itself
            results[i]["error"] = str(exc).removeprefix(f"{name}: ")
            continue
        except Exception as exc:  # noqa: BLE001 - one file that breaks the preprocessing must not stop the batch
            results[i]["error"] = (
                f"could not be processed ({type(exc).__name__}: {exc}); please report this image"
            )
            continue
        if "frame" in image.info:
            results[i]["frame"] = image.info["frame"]
            print(
                f"note: {name}: read {image.info['frame']}, the one with the most contrast",
                file=sys.stderr,
            )
    if good:
        probs = predict_images(model, torch.stack([t for _, t in good]))
        for (i, _), row in zip(good, probs, strict=False):
            top = top_k(row)
            results[i].update(prediction=top[0][0], top3=top)
    for result in results:
        if "error" in result:
            print(f"error: {result['file']}: {result['error']}", file=sys.stderr)
        else:
            print(
                f"{result['file']}: {result['prediction']}  (top-3 "
                f"{' '.join(f'{d}:{p:.3f}' for d, p in result['top3'])})"
            )
    failed = any("error" in r for r in results)
    if args.json is not None:
        try:
            paths.write_user_file(args.json, json.dumps(results, indent=2) + "\n")
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
