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


def _check_file(path: Path, name: str) -> None:
    """Refuse a path that is no readable regular file, naming why."""
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


def jpeg_intact(path: Path) -> bool:
    """Whether a JPEG's header segments are whole: each a marker (0xFF, a code) and a length that
    lands on the next, up to the image data (Pillow decodes a damaged header into colour noise)."""
    data, at = path.read_bytes(), 2
    if data[:2] != b"\xff\xd8":
        return False
    while at + 4 <= len(data):
        marker, length = data[at : at + 2], int.from_bytes(data[at + 2 : at + 4], "big")
        if marker[0] != 0xFF or marker[1] in (0x00, 0xFF) or length < 2:
            return False
        if marker[1] == 0xDA:  # start of scan: the compressed image data follows
            return True
        at += 2 + length
    return False


def _capped(image: Image.Image, name: str, cap: int) -> int:
    """The frames to read (at most MAX_FRAMES), each checked against the pixel cap before it is
    decoded: a small first page must not let a huge second one through."""
    frames = min(getattr(image, "n_frames", 1), MAX_FRAMES)
    for k in range(frames):
        image.seek(k)
        width, height = image.size
        if width * height > cap:
            where = f" (frame {k + 1})" if frames > 1 else ""
            raise ImageError(
                f"{name}: image{where} is {width}×{height} = {width * height / 1e6:.1f} "
                f"megapixels, over the {cap / 1e6:g}-megapixel limit; shrink or crop it around "
                "the digit first."
            )
    image.seek(0)
    return frames


def _best_frame(image: Image.Image, frames: int) -> None:
    """Seek an animated GIF or multi-page TIFF to the frame with the most contrast: the digit."""
    if frames > 1:
        spread = [
            np.nanstd(to_gray(frame)) for frame in islice(ImageSequence.Iterator(image), frames)
        ]
        best = int(np.argmax(spread))
        image.seek(best)
        image.info["frame"] = f"frame {best + 1} of {image.n_frames}"


def load_image(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file (EXIF rotation applied), refusing huge frames before
    they are decoded and damaged JPEG headers."""
    name, path = os.fspath(path), Path(path)
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    _check_file(path, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap is stricter
            with Image.open(path) as image:
                if image.format == "JPEG" and not jpeg_intact(path):
                    raise ImageError(f"{name}: a damaged JPEG (its header is broken); re-save it.")
                frames = _capped(image, name, cap)
                image.load()
                _best_frame(image, frames)
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
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ImageError(
            f"{name}: cannot read the image ({problem}); is the file truncated or damaged?"
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
    integers by the smallest full scale 2**k - 1 (k = 8…32) that holds them (12-bit data in a
    16-bit file works), floats as they are when within [0, 1]; other data by its own min..max. NaN
    and ±Inf pixels stay NaN (background)."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    low, high = (
        (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    )
    if low >= 0 and (high <= 1 or integer):
        scales = (2.0**k - 1 for k in range(8, 33) if high <= 2**k - 1)
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
