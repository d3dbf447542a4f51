"""Image files a user names, decoded safely into one grayscale array: huge images refused before
they are decoded, every colour mode and bit depth mapped to [0, 1], transparency composited."""

from __future__ import annotations

import errno
import os
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from mnist_utils import errors

MAX_PIXELS = 40_000_000
"""Largest image (width × height) :func:`load_image` decodes; bigger ones are refused undecoded."""
MAX_FRAMES = 50
"""Frames of an animated GIF / multi-page TIFF that :func:`load_image` compares to find the one with
the digit."""


class ImageError(errors.MnistError):
    """An image cannot be read, or holds no digit: the message names the problem and the fix."""


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
        raise ImageError(f"{name}: {problem}; check the path.") from exc
    if not path.is_file():
        raise ImageError(f"{name}: not a regular file (a folder?); pass image files.")
    try:
        with warnings.catch_warnings():
            # our own cap below is stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > cap:
                    raise ImageError(
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
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{name}: not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{name}: refused as a decompression bomb ({exc}); shrink the image first."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
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
        raise ImageError(
            f"image mode {mode!r} cannot be converted to grayscale ({exc}); save it as PNG first."
        ) from exc
