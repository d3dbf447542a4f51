"""A digit of your own in MNIST's format, as LeCun et al. built the set: the ink cropped, fitted
into a 20×20 box (aspect ratio kept, anti-aliased), and placed in a 28×28 field so that its centre
of mass is at the centre; then the model's reading of it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from . import errors
from .engine import predict_log_probs

SIDE, BOX = 28, 20
"""MNIST's field and the box its digits are fitted into, in pixels."""
INK_FRACTION = 0.1
"""Pixels with less ink than this (of full ink) are paper."""


class DigitError(errors.MnistError):
    """An image holds no digit to read (blank, or its ink too thin to survive scaling)."""


def bounds(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the smallest box holding every True pixel of a non-empty map."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def fit_box(ink: np.ndarray) -> np.ndarray:
    """Resize ink [H, W] to fit the BOX×BOX square, aspect ratio kept (Lanczos); peak rescaled
    to 1."""
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, min(BOX, round(width * scale))), max(1, min(BOX, round(height * scale))))
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    resized = np.clip(np.asarray(image.resize(size, Image.Resampling.LANCZOS), np.float64), 0, None)
    peak = float(resized.max())
    if peak <= 0:
        raise DigitError("image is blank after resizing: the digit is too thin to scale to 20×20.")
    return np.clip(resized / peak, 0.0, 1.0)


def place_centred(patch: np.ndarray) -> np.ndarray:
    """Put ``patch`` in a SIDE×SIDE field so that its centre of mass lands on the centre."""
    offset = SIDE / 2 - np.array(ndimage.center_of_mass(patch))
    h, w = patch.shape  # halves round up, float noise ignored: symmetric shapes always shift alike
    top, left = np.clip(np.floor(offset + 0.5 + 1e-6), 0, [SIDE - h, SIDE - w]).astype(int)
    field = np.zeros((SIDE, SIDE))
    field[top : top + h, left : left + w] = patch
    return field


def in_mnist_format(ink: np.ndarray) -> bool:
    """Whether ink [H, W] in [0, 1] is already a digit in MNIST's format (an MNIST digit saved as an
    image): 28×28, most pixels exactly paper, the ink within a 20×20 box, centred by mass (to 1.5
    pixels). Normalising it again would blur it."""
    if ink.shape != (SIDE, SIDE) or np.median(ink) > 0 or not (ink > 0).any():
        return False
    rows, cols = bounds(ink > 0)
    if rows.stop - rows.start > BOX or cols.stop - cols.start > BOX:
        return False
    return bool(np.abs(np.array(ndimage.center_of_mass(ink)) - (SIDE - 1) / 2).max() <= 1.5)


def normalise(ink: np.ndarray, mask: np.ndarray | None = None) -> torch.Tensor:
    """Ink [H, W] in [0, 1] (bright on black) → uint8 [28, 28] as in MNIST: cropped to the pixels
    of ``mask`` (default: those with ink), fitted into 20×20, centred by mass."""
    mask = ink > INK_FRACTION if mask is None else mask
    if not mask.any():
        raise DigitError("image is blank: no ink stands out from the paper.")
    field = place_centred(fit_box((ink * mask)[bounds(mask)]))
    return torch.from_numpy(np.rint(field * 255.0).clip(0, 255).astype(np.uint8))


def preprocess(image: Image.Image) -> torch.Tensor:
    """A clean image of one digit (a drawing; either polarity) → uint8 [28, 28] as in MNIST."""
    gray = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    ink = 1.0 - gray if np.median(gray) > 0.5 else gray  # dark ink on light paper: invert
    return normalise(ink)


def predict_images(model: nn.Module, images_u8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 images [N, 28, 28]."""
    return predict_log_probs(model, images_u8).exp()


def top_k(probs: torch.Tensor, k: int = 3) -> list[list]:
    """The ``k`` most probable digits of one row as [[digit, probability], ...]."""
    values, digits = probs.topk(k)
    return [[int(d), float(p)] for d, p in zip(digits, values)]
