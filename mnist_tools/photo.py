"""Photos and scans of a digit on paper, cleaned up before MNIST's normalisation: uneven light
divided out, the lines of ruled or squared paper painted over, clutter and specks dropped; a blank
page, a speck, a solid block or more than one digit is refused in one line."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from mnist_utils import digits

from .images import ImageError, to_gray

INK_FRACTION = 0.1
"""Pixels near the digit's strokes with over this fraction of full ink make up its bounding box."""
MIN_CONTRAST = 0.25
"""An image whose ink is less than this (fraction of the paper's level; of full scale for light ink
on dark) above its background counts as blank."""
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
widths and NECK_HEIGHT of its height thick, with tall writing on both sides, is two touching
digits."""
SOLID = 0.9
"""Ink filling this much of its box, and less than 2.5 times as long as wide, is a block (a shadow,
a smudge), not strokes."""
MAX_INK = 0.5
"""Ink is never the majority of a photo of a digit on paper: more is a shadow, a dark page or a
texture."""
WORK_SIZE = 1024
"""Larger images are first reduced (box average) to at most this many pixels on their long side."""
FRAGMENT_MASS, FRAGMENT_GAP = 0.1, 0.15
"""A separate piece of ink belongs to the digit (a broken stroke) when it has at least FRAGMENT_MASS
of the main stroke's ink and lies within FRAGMENT_GAP of the digit's size from it; smaller or
farther ones are specks."""


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold (scikit-image, 256 bins) moved from the centre to the top of its bin, so the
    whole bin is the lower class: paper with a little noise is never half ink."""
    return float(threshold_otsu(values)) + float(values.max() - values.min()) / 512


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
    above = flat > otsu(flat)
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
    strong = ink > otsu(ink)
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
        raise ImageError(
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
            raise ImageError(
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
            raise ImageError(
                f"more than one digit found ({count} pieces side by side); crop the "
                "image to a single digit."
            )


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
        raise ImageError(
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
    writing = writing[digits.bounds(writing)]
    if writing.mean() > SOLID and max(writing.shape) < 2.5 * min(writing.shape):
        raise ImageError(
            "no digit found: the ink is a solid block (a shadow or a smudge), not pen strokes; "
            "photograph the digit in even light."
        )
    if _touching(writing):
        raise ImageError(
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
        raise ImageError("image has zero size; it holds no digit.")
    if gray.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale array, got shape {gray.shape}.")
    for ink in (gray, 1.0 - gray):  # a digit already in MNIST's format is read as it is
        if np.isfinite(ink).all() and digits.in_mnist_format(ink):
            return torch.from_numpy(np.rint(ink * 255.0).clip(0, 255).astype(np.uint8))
    if min(gray.shape) < MIN_SIDE or max(gray.shape) < MIN_LONG_SIDE:
        size = f"{gray.shape[1]}×{gray.shape[0]}"
        raise ImageError(
            f"image is only {size} pixels, too small to hold a digit; use one at "
            f"least {MIN_LONG_SIDE} pixels on its long side (MNIST's are 28)."
        )
    finite = np.isfinite(gray)
    if not finite.any():
        raise ImageError("image is blank: no pixel has a finite value.")
    gray = np.where(finite, gray, np.median(gray[finite]))  # NaN/Inf pixels count as background
    factor = -(-max(gray.shape) // WORK_SIZE)  # a 20×20 digit needs no more pixels than this
    if factor > 1:
        gray = np.asarray(
            Image.fromarray(gray.astype(np.float32), "F").reduce(factor), dtype=np.float64
        )
    flat = flatten(gray)
    ink, strong = remove_lines(flat, *ink_map(flat))
    if not strong.any():
        raise ImageError("image is blank: it holds only the lines of ruled or squared paper.")
    if strong.mean() > MAX_INK:
        raise ImageError(
            f"no digit found: {100 * strong.mean():.0f} % of the image reads as ink (a shadow, a "
            "dark page or a texture, not pen strokes); photograph the digit in even light."
        )
    return digits.normalise(ink, digit_mask(ink, strong))


def preprocess(image: Image.Image) -> torch.Tensor:
    """Any Pillow image of one digit → uint8 [28, 28], bright on black, as in MNIST."""
    return preprocess_array(to_gray(image))
