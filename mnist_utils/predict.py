"""Classify your own digit images: MNIST-style preprocessing (as LeCun et al. built the set) and the `predict` CLI.

MNIST digits are bright on black, size-normalised to fit a 20×20 box (aspect ratio kept, anti-aliased) and placed
in a 28×28 field so that their centre of mass is at pixel (14, 14). :func:`preprocess` does the same to any image.
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
"""Largest image (width × height) :func:`load_image` decodes; bigger files are refused before decoding."""
MAX_FRAMES = 50
"""Frames of an animated GIF / multi-page TIFF that :func:`load_image` compares to find the one with the digit."""

SIZE = 28
BOX = 20
INK_FRACTION = 0.1
"""Pixels near the digit's strokes with more than this fraction of full ink make up its bounding box."""
MIN_CONTRAST = 0.05
"""An image whose ink is less than this (fraction of full scale) above its background counts as blank."""
WORK_SIZE = 1024
"""Larger images are first reduced (box average) to at most this many pixels on their long side."""
FRAGMENT_MASS, FRAGMENT_GAP = 0.1, 0.15
"""A separate piece of ink belongs to the digit (a broken stroke) when it has at least FRAGMENT_MASS of the main
stroke's ink and lies within FRAGMENT_GAP of the digit's size from it; smaller or farther ones are specks."""


class PredictError(ValueError):
    """An input image cannot be read or holds no digit; the message names the problem and the fix."""


def default_checkpoint() -> Path:
    """The best trained single model, chosen on validation, never on the test set: the highest recorded validation
    accuracy among the runs of the full and default profiles whose checkpoint exists (a run without a validation split,
    such as notebook 4's reference, only when no run has one; the quick profile's only when neither profile has a
    run); else where `make run-all` puts reference."""
    for profiles in (("full", "default"), ("quick",)):
        found = [(("val_accuracy" in entry, entry.get("val_accuracy", -1.0)), path) for profile in profiles
                 for name, entry in runs.read_metrics(profile).items()
                 if (path := paths.run_dir(name, profile) / engine.CHECKPOINT).is_file()]
        if found:
            return max(found)[1]
    return paths.run_dir("reference", "default") / engine.CHECKPOINT


def load_default(checkpoint: Path | None = None) -> tuple[nn.Module, str]:
    """(the model of ``checkpoint`` or :func:`default_checkpoint` on the CPU, one line naming it: file, run, profile,
    and the test accuracy its metrics.json records)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, config, _ = engine.load_model(path, torch.device("cpu"))
    run, profile, metrics = path.parent.name, path.parent.parent.name, path.parent.parent / "metrics.json"
    try:
        entry = runs.read_json(metrics, {}).get(run, {})
    except runs.ArtifactError:
        entry = {}
    same = "config" in entry and RunConfig.from_dict(entry["config"]) == config
    score = f"test accuracy {100 * entry['test_accuracy']:.2f} % in {metrics}" if same else "no test accuracy recorded for it"
    note = "; a smoke-test model (2,000 training images): train a real one with `make run-all`" if profile == "quick" else ""
    where = f", profile {profile}" if profile in PROFILES else ""
    return model, f"model: {path} (run {config.name}{where}, {score}{note})"


def load_image(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file (EXIF rotation applied), refusing huge ones before decoding."""
    name, path = os.fspath(path), Path(path)
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        path.stat()
    except OSError as exc:
        problem = ("a symbolic link loop" if exc.errno == errno.ELOOP else "a symbolic link to a missing file"
                   if path.is_symlink() else "no such file" if exc.errno == errno.ENOENT else exc.strerror)
        raise PredictError(f"{name}: {problem}; check the path.") from exc
    if not path.is_file():
        raise PredictError(f"{name}: not a regular file (a folder?); pass image files.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap below is stricter
            with Image.open(path) as image:
                width, height = image.size
                if width * height > cap:
                    raise PredictError(
                        f"{name}: image is {width}×{height} = {width * height / 1e6:.1f} megapixels, over the "
                        f"{cap / 1e6:g}-megapixel limit; shrink or crop it around the digit first."
                    )
                image.load()
                frames = getattr(image, "n_frames", 1)
                if frames > 1:  # animated GIF, multi-page TIFF: the frame with the most contrast holds the digit
                    spread = [np.nanstd(to_gray(frame)) for frame in islice(ImageSequence.Iterator(image), MAX_FRAMES)]
                    best = int(np.argmax(spread))
                    image.seek(best)
                    image.info["frame"] = f"frame {best + 1} of {frames}"
                return ImageOps.exif_transpose(image)
    except PredictError:
        raise
    except UnidentifiedImageError as exc:
        raise PredictError(f"{name}: not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...).") from exc
    except Image.DecompressionBombError as exc:
        raise PredictError(f"{name}: refused as a decompression bomb ({exc}); shrink the image first.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PredictError(
            f"{name}: cannot read the image ({type(exc).__name__}: {exc}); is the file truncated or damaged?"
        ) from exc


def _alpha_composite(rgba: np.ndarray) -> np.ndarray:
    """Luminance of float RGBA [H, W, 4] in [0, 1], composited onto a background that contrasts with the opaque ink."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    weight = alpha[..., 0]
    if weight.sum() == 0:
        return luma
    ink_is_light = float((luma * weight).sum() / weight.sum()) > 0.5
    background = 0.0 if ink_is_light else 1.0  # dark ink on transparency -> white paper; light ink -> black
    return luma * weight + background * (1 - weight)


def _real_range(values: np.ndarray) -> np.ndarray:
    """16/32-bit or float pixels scaled to [0, 1] by their own min..max, so 12-bit data in a 16-bit file works; NaN and
    ±Inf pixels stay NaN (:func:`preprocess_array` treats them as background)."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    return np.where(finite, (values - low) / (high - low) if high > low else 0.0, np.nan)


def to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → float64 grayscale [H, W] in [0, 1] (transparent pixels become background)."""
    mode = image.mode
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _real_range(np.asarray(image.convert("I") if mode.startswith("I;16") else image))
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
            return _alpha_composite(np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0)
        rgb = image if mode in ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr") else image.convert("RGB")
        return np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
    except (ValueError, OSError) as exc:
        raise PredictError(f"image mode {mode!r} cannot be converted to grayscale ({exc}); save it as PNG first.") from exc


def otsu_threshold(gray: np.ndarray, bins: int = 256) -> float:
    """Otsu's global threshold for values in [0, 1]: the level that best separates the histogram into two classes."""
    hist, edges = np.histogram(gray, bins=bins, range=(0.0, 1.0))
    mids = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)
    above = below[-1] - below
    mass = np.cumsum(hist * mids)
    between = below * above * (mass / np.maximum(below, 1) - (mass[-1] - mass) / np.maximum(above, 1)) ** 2
    return float(edges[1 + int(np.argmax(between))])


def ink_map(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink in [0, 1], bright on black; the pixels above Otsu's threshold). The background is the majority class."""
    strong = gray >= otsu_threshold(gray)
    if strong.mean() > 0.5:  # most pixels are bright: dark ink on light paper
        gray, strong = 1.0 - gray, ~strong
    two_classes = strong.any() and not strong.all()
    background, ink_level = (float(np.median(gray[~strong])), float(np.percentile(gray[strong], 90))) if two_classes else (0, 0)
    if ink_level - background < MIN_CONTRAST:
        raise PredictError("image is blank: no digit stands out from the background (draw it darker or bigger).")
    return np.clip((gray - background) / (ink_level - background), 0.0, 1.0), strong


def _is_clutter(component: np.ndarray, others: np.ndarray, box: tuple[slice, slice], shape: tuple[int, int]) -> bool:
    """A thin line along the image's edge, or a hollow box (3–4 sides drawn) with other ink inside it."""
    height, width = component.shape
    at_edge = (box[0].start == 0 or box[0].stop == shape[0], box[1].start == 0 or box[1].stop == shape[1])
    line = (at_edge[0] and width >= 0.3 * shape[1] and height <= width / 8) or \
           (at_edge[1] and height >= 0.3 * shape[0] and width <= height / 8)
    dy, dx = max(2, height // 6), max(2, width // 6)
    inner = (slice(dy, -dy), slice(dx, -dx))
    if line or height <= 4 * dy or width <= 4 * dx or component[inner].sum() > 0.02 * component.sum():
        return line
    sides = (component[:dy].any(0).mean(), component[-dy:].any(0).mean(),
             component[:, :dx].any(1).mean(), component[:, -dx:].any(1).mean())
    return sorted(sides)[1] >= 0.6 and bool(others[inner].any())


def digit_mask(ink: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """The pixels of the digit: the heaviest connected stroke and the large pieces near it (a broken stroke), without
    boxes, border lines and specks; each faint (anti-aliased) pixel goes with the stroke nearest to it."""
    labels, count = ndimage.label(strong, structure=np.ones((3, 3)))
    boxes = ndimage.find_objects(labels)
    mass = np.asarray(ndimage.sum_labels(ink, labels, range(1, count + 1)))
    clutter = [k for k, box in enumerate(boxes) if _is_clutter(labels[box] == k + 1, strong[box] & (labels[box] != k + 1), box, ink.shape)]
    if len(clutter) < count:  # never remove everything: a lone line is the digit 1
        mass[clutter] = 0
    main = int(np.argmax(mass))
    gap = ndimage.distance_transform_edt(labels != main + 1)
    reach = FRAGMENT_GAP * max(box.stop - box.start for box in boxes[main])
    kept = [k + 1 for k in np.flatnonzero(mass >= FRAGMENT_MASS * mass[main]) if gap[labels == k + 1].min() <= reach]
    distance, nearest = ndimage.distance_transform_edt(~strong, return_indices=True)
    owner = labels[tuple(nearest)]
    return (ink > INK_FRACTION) & np.isin(owner, kept) & (distance <= max(2.0, 0.02 * max(ink.shape)))


def preprocess_array(gray: np.ndarray) -> torch.Tensor:
    """A float grayscale image [H, W] in [0, 1] of one digit, either polarity → uint8 [28, 28] as in MNIST."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.size == 0:
        raise PredictError("image has zero size; it holds no digit.")
    if gray.ndim != 2:
        raise PredictError(f"expected a 2-D grayscale array, got shape {gray.shape}.")
    finite = np.isfinite(gray)
    if not finite.any():
        raise PredictError("image is blank: no pixel has a finite value.")
    gray = np.where(finite, gray, np.median(gray[finite]))  # NaN/Inf pixels count as background
    factor = -(-max(gray.shape) // WORK_SIZE)
    if factor > 1:  # a 20×20 digit needs no more: keeps a 40-megapixel photo fast and small in memory
        gray = np.asarray(Image.fromarray(gray.astype(np.float32), "F").reduce(factor), dtype=np.float64)
    ink, strong = ink_map(gray)
    mask = digit_mask(ink, strong)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    patch = fit_box((ink * mask)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    field = place_centred(patch)
    return torch.from_numpy(np.rint(field * 255.0).clip(0, 255).astype(np.uint8))


def fit_box(ink: np.ndarray) -> np.ndarray:
    """Resize to fit the BOX×BOX square, aspect ratio kept, with Lanczos anti-aliasing; peak rescaled to 1."""
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, min(BOX, round(width * scale))), max(1, min(BOX, round(height * scale))))
    resized = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    resized = np.clip(resized.astype(np.float64), 0.0, None)
    peak = float(resized.max())
    if peak <= 0:
        raise PredictError("image is blank after resizing: the digit is too thin to survive scaling to 20×20.")
    return np.clip(resized / peak, 0.0, 1.0)


def place_centred(patch: np.ndarray) -> np.ndarray:
    """Paste ``patch`` into a SIZE×SIZE field so its centre of mass lands on pixel (SIZE/2, SIZE/2)."""
    offset = SIZE / 2 - np.array(ndimage.center_of_mass(patch))
    h, w = patch.shape  # halves round up, float noise ignored: symmetric shapes always shift alike
    top, left = np.clip(np.floor(offset + 0.5 + 1e-6), 0, [SIZE - h, SIZE - w]).astype(int)
    field = np.zeros((SIZE, SIZE))
    field[top : top + h, left : left + w] = patch
    return field


def preprocess(image: Image.Image) -> torch.Tensor:
    """Any Pillow image of one digit → uint8 [28, 28], bright on black, MNIST-normalised (20×20 box, centre of mass)."""
    return preprocess_array(to_gray(image))


def predict_images(model: nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28]."""
    return engine.predict_log_probs(model, images_u8).exp()


def top_k(probs: torch.Tensor, k: int = 3) -> list[list]:
    """The ``k`` most probable digits of one row as [[digit, probability], ...]."""
    values, digits = probs.topk(k)
    return [[int(d), float(p)] for d, p in zip(digits, values, strict=False)]


def main(argv: list[str] | None = None) -> int:
    """`predict IMAGE... [--checkpoint PATH] [--json OUT.json]`: exit 0 all ok, 1 an image failed, 2 bad checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m mnist_utils predict",
                                     description="Predict the digit in each image with a trained checkpoint.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, one digit each (any colours, any size); put `--` before names starting with '-'")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint to use (default: the trained run with the best recorded validation accuracy, "
                             "full or default profile)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the results as JSON")
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
            results[i]["error"] = str(exc).removeprefix(f"{name}: ")  # load_image names the file itself
            continue
        except Exception as exc:  # noqa: BLE001 - one file that breaks the preprocessing must not stop the batch
            results[i]["error"] = f"could not be processed ({type(exc).__name__}: {exc}); please report this image"
            continue
        if "frame" in image.info:
            results[i]["frame"] = image.info["frame"]
            print(f"note: {name}: read {image.info['frame']}, the one with the most contrast", file=sys.stderr)
    if good:
        probs = predict_images(model, torch.stack([t for _, t in good]))
        for (i, _), row in zip(good, probs, strict=False):
            top = top_k(row)
            results[i].update(prediction=top[0][0], top3=top)
    for result in results:
        if "error" in result:
            print(f"error: {result['file']}: {result['error']}", file=sys.stderr)
        else:
            print(f"{result['file']}: {result['prediction']}  (top-3 {' '.join(f'{d}:{p:.3f}' for d, p in result['top3'])})")
    failed = any("error" in r for r in results)
    if args.json is not None:
        try:
            paths.atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
