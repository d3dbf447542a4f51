"""Classify your own digit images: MNIST-style preprocessing (as LeCun et al. built the set) and the `predict` CLI.

MNIST digits are bright on black, size-normalised to fit a 20×20 box (aspect ratio kept, anti-aliased) and placed
in a 28×28 field so that their centre of mass is at pixel (14, 14). :func:`preprocess` does the same to any image.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from . import engine, paths

MAX_PIXELS = 40_000_000
"""Largest image (width × height) :func:`load_image` decodes; bigger files are refused before decoding."""

SIZE = 28
BOX = 20
INK_FRACTION = 0.1
"""Pixels brighter than this fraction of the brightest one make up the digit's bounding box."""
MIN_CONTRAST = 0.05
"""An image whose ink is less than this (fraction of full scale) above its background counts as blank."""


class PredictError(ValueError):
    """An input image cannot be read or holds no digit; the message names the problem and the fix."""


def default_checkpoint() -> Path:
    """The reference run's checkpoint (written by `make run-all`)."""
    return paths.run_dir("reference", "default") / engine.CHECKPOINT


def load_image(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file (EXIF rotation applied), refusing huge ones before decoding."""
    name, path = os.fspath(path), Path(path)
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    if not path.exists():
        raise PredictError(f"{name}: no such file; check the path.")
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


def _wide_int_to_unit(values: np.ndarray) -> np.ndarray:
    """Integer or float pixels of 16/32-bit modes scaled to [0, 1] by the range their maximum implies."""
    values = values.astype(np.float64)
    top = float(values.max(initial=0.0))
    scale = 1.0 if top <= 1.0 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.clip(values / scale, 0.0, 1.0)


def to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → float64 grayscale [H, W] in [0, 1] (transparent pixels become background)."""
    mode = image.mode
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _wide_int_to_unit(np.asarray(image.convert("I") if mode.startswith("I;16") else image))
        if mode == "L":
            return np.asarray(image, dtype=np.float64) / 255.0
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
            return _alpha_composite(np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0)
        rgb = image if mode in ("1", "P", "RGB", "RGBX", "CMYK", "YCbCr") else image.convert("RGB")
        return np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
    except (ValueError, OSError) as exc:
        raise PredictError(f"image mode {mode!r} cannot be converted to grayscale ({exc}); save it as PNG first.") from exc


def _border(gray: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Bright-digit-on-black ink in [0, 1]: invert light backgrounds, subtract the background level, stretch to 1."""
    if gray.size == 0:
        raise PredictError("image has zero size; it holds no digit.")
    if np.median(_border(gray)) > 0.5:
        gray = 1.0 - gray
    background = float(np.median(_border(gray)))
    ink = np.clip(gray - background, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise PredictError("image is blank: no digit stands out from the background (draw it darker or bigger).")
    return ink / peak


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of pixels brighter than ``INK_FRACTION`` of the maximum."""
    mask = ink > INK_FRACTION * ink.max()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_box(ink: np.ndarray, box: int = BOX) -> np.ndarray:
    """Resize to fit a ``box``×``box`` square, aspect ratio kept, with Lanczos anti-aliasing; peak rescaled to 1."""
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, min(box, round(width * scale))), max(1, min(box, round(height * scale))))
    resized = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    resized = np.clip(resized.astype(np.float64), 0.0, None)
    peak = float(resized.max())
    if peak <= 0:
        raise PredictError("image is blank after resizing: the digit is too thin to survive scaling to 20×20.")
    return np.clip(resized / peak, 0.0, 1.0)


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted (row, column) centre in pixel-index coordinates."""
    total = ink.sum()
    rows, cols = np.arange(ink.shape[0]), np.arange(ink.shape[1])
    return float(ink.sum(axis=1) @ rows / total), float(ink.sum(axis=0) @ cols / total)


def _round_half_up(value: float) -> int:
    """Round to the nearest integer, halves up, ignoring float noise (so symmetric shapes always shift alike)."""
    return int(np.floor(value + 0.5 + 1e-6))


def place_centred(patch: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Paste ``patch`` into a ``size``×``size`` field so its centre of mass lands on pixel (size/2, size/2)."""
    cy, cx = centre_of_mass(patch)
    h, w = patch.shape
    top = int(np.clip(_round_half_up(size / 2 - cy), 0, size - h))
    left = int(np.clip(_round_half_up(size / 2 - cx), 0, size - w))
    field = np.zeros((size, size))
    field[top : top + h, left : left + w] = patch
    return field


def preprocess(image: Image.Image) -> torch.Tensor:
    """Any Pillow image of one digit → uint8 [28, 28], bright on black, MNIST-normalised (20×20 box, centre of mass)."""
    if image.width == 0 or image.height == 0:
        raise PredictError("image has zero size; it holds no digit.")
    patch = fit_box(crop_to_ink(ink_map(to_gray(image))))
    field = place_centred(patch)
    return torch.from_numpy(np.rint(field * 255.0).clip(0, 255).astype(np.uint8))


def predict_images(model: nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28]."""
    return engine.predict_log_probs(model, images_u8).exp()


def load_predictor(checkpoint: Path | str) -> nn.Module:
    """The trained model of a checkpoint on the CPU (a missing or incompatible one raises CheckpointError)."""
    model, _, _ = engine.load_model(Path(checkpoint), torch.device("cpu"))
    return model


def top_k(probs: torch.Tensor, k: int = 3) -> list[list]:
    """The ``k`` most probable digits of one row as [[digit, probability], ...]."""
    values, digits = probs.topk(k)
    return [[int(d), float(p)] for d, p in zip(digits, values, strict=False)]


def format_line(name: str, top: list[list]) -> str:
    """One output line: file, predicted digit, top-3 as ``d:prob``."""
    shown = " ".join(f"{d}:{p:.3f}" for d, p in top)
    return f"{name}: {top[0][0]}  (top-3 {shown})"


def _parser() -> argparse.ArgumentParser:
    """Command-line options of `python -m mnist_utils predict`."""
    parser = argparse.ArgumentParser(prog="python -m mnist_utils predict",
                                     description="Predict the digit in each image with a trained checkpoint.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, one digit each (any colours, any size)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"checkpoint to use (default: {default_checkpoint()})")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the results as JSON")
    return parser


def _write_json(path: Path, results: list[dict]) -> str | None:
    """Write the results; return an error message instead of raising."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """`predict IMAGE... [--checkpoint PATH] [--json OUT.json]`: exit 0 all ok, 1 an image failed, 2 bad checkpoint."""
    args = _parser().parse_args(argv)
    try:
        model = load_predictor(args.checkpoint or default_checkpoint())
    except engine.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results: list[dict] = [{"file": str(name)} for name in args.images]
    good: list[tuple[int, torch.Tensor]] = []
    for i, name in enumerate(args.images):
        try:
            good.append((i, preprocess(load_image(name))))
        except PredictError as exc:
            results[i]["error"] = str(exc).removeprefix(f"{name}: ")  # load_image names the file itself
    if good:
        probs = predict_images(model, torch.stack([t for _, t in good]))
        for (i, _), row in zip(good, probs, strict=False):
            top = top_k(row)
            results[i].update(prediction=top[0][0], top3=top)
    for result in results:
        if "error" in result:
            print(f"error: {result['file']}: {result['error']}", file=sys.stderr)
        else:
            print(format_line(result["file"], result["top3"]))
    failed = any("error" in r for r in results)
    if args.json is not None:
        problem = _write_json(args.json, results)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
