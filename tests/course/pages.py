"""What an explorer's HTML shows, read back for the tests: the images' pixels and the matrix."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

IMG = re.compile(r'<img class="([\w-]+)" data-scale="(\d+)" src="data:image/png;base64,([^"]+)"')
MATRIX = re.compile(r'<pre class="affine-matrix"[^>]*>(.*?)</pre>', re.S)


def shown_images(page: str, cls: str) -> list[np.ndarray]:
    """The uint8 pixels of the images of class ``cls`` in an HTML string, one pixel per block."""
    found = []
    for name, scale, data in IMG.findall(page):
        if name == cls:
            image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
            found.append(image[:: int(scale), :: int(scale)])
    return found


def shown_matrix(page: str) -> np.ndarray:
    """The 3×3 matrix of notebook 02's explorer as the page shows it."""
    return np.array(MATRIX.search(page).group(1).split(), dtype=float).reshape(3, 3)
