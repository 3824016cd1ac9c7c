"""Example images for the demos: the photographs bundled inside scikit-image (no download), plus
two drawn ones whose edges point one way each, so a line detector has something clear to find."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from convzoo import sizes
from convzoo.errors import BadInputError

# label -> scikit-image loader name; all of these ship inside the scikit-image wheel
PHOTOS = {
    "camera (grey)": "camera",
    "astronaut (colour)": "astronaut",
    "coffee (colour)": "coffee",
    "cat (colour)": "chelsea",
    "coins (grey)": "coins",
    "rocket (colour)": "rocket",
    "brick (grey)": "brick",
    "text (grey)": "text",
    "checkerboard (grey)": "checkerboard",
}
DRAWN = ("lines: one vertical, one horizontal", "a white square")


def names() -> list[str]:
    return [*PHOTOS, *DRAWN]


def _drawn(name: str) -> np.ndarray:
    image = np.zeros((128, 128), np.uint8)
    if name == DRAWN[0]:
        image[:, 40:46] = 255     # vertical bar: lights up the vertical-line detector (filter A)
        image[84:90, :] = 255     # horizontal bar: filter B
    else:
        image[32:96, 32:96] = 255
    return image


@lru_cache(maxsize=16)
def _load(name: str) -> np.ndarray:
    if name in DRAWN:
        return _drawn(name)
    if name not in PHOTOS:
        raise BadInputError(f"no example named {sizes.shown(name)}; choose one of: {', '.join(names())}")
    import skimage.data  # noqa: PLC0415 -- a second or so to import; only when an example is asked for

    image = getattr(skimage.data, PHOTOS[name])()
    return (image.astype(np.uint8) * (255 if image.dtype == bool else 1)).copy()


def load(name: str, max_side: int | None = None) -> np.ndarray:
    """The example as uint8 pixels, HxW (grey) or HxWx3, scaled down so its longer side is at most ``max_side``."""
    image = _load(name)
    return shrink(image, max_side) if max_side else image.copy()


def shrink(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Scale down (never up) so the longer side is ``max_side``: a 2-core CPU stays responsive."""
    height, width = pixels.shape[:2]
    if max(height, width) <= max_side:
        return pixels
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
