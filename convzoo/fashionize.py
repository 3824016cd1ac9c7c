"""Bring a product photo to Fashion-MNIST's form, the way the data set's authors made theirs. No torch.

Xiao, Rasul & Vollgraf (2017), "Fashion-MNIST", section 2, convert each product thumbnail by:
trimming the edges close to the colour of the corner pixels (within 5% of the maximum intensity),
resizing the longest edge to 28, sharpening (Gaussian, radius and sigma 1.0), extending the
shortest edge to 28 with the image centred, negating the intensities, and converting to 8-bit grey.

Their photos were shot on white, so negation alone gave a black background. A shoe photographed
on a table is not on white: here the background colour is measured on the image's border and
mapped to black (for a white background this is exactly the paper's negation), and an object
lighter than its background is not negated at all. The resize averages pixels (Lanczos) instead
of skipping rows and columns, because the paper subsampled 51x73 thumbnails while a user's photo
may be thousands of pixels wide, where skipping would alias badly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from convzoo.errors import BadInputError

SIZE = 28
TRIM_TOLERANCE = 0.05  # the paper: "within 5% of the maximum possible intensity in RGB space"
BORDER = 0.02  # fraction of each side sampled to estimate the background colour


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (a transparent product PNG is a product on white)."""
    if has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def background_color(rgb: np.ndarray) -> np.ndarray:
    """The median colour of a thin frame around the image: robust to a product touching one edge."""
    h, w = rgb.shape[:2]
    band = max(1, round(BORDER * min(h, w)))
    frame = np.concatenate([rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
                            rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3)])
    return np.median(frame, axis=0)


def content_box(rgb: np.ndarray, background: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels farther than the tolerance from the background."""
    distance = np.linalg.norm(rgb.astype(np.float32) - background, axis=2)
    mask = distance > TRIM_TOLERANCE * 255 * np.sqrt(3)
    # a row or column counts as content only if a few of its pixels differ: table grain and JPEG noise do not
    rows = np.flatnonzero(mask.sum(axis=1) >= max(1, 0.005 * mask.shape[1]))
    cols = np.flatnonzero(mask.sum(axis=0) >= max(1, 0.005 * mask.shape[0]))
    if rows.size == 0 or cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def is_fashion_form(image: Image.Image) -> bool:
    """Already 28x28 with a dark border (a Fashion-MNIST image): leave it as it is."""
    if image.size != (SIZE, SIZE):
        return False
    gray = np.asarray(image.convert("L"), np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border)) < 64


def fashionize(image: Image.Image | np.ndarray) -> Image.Image:
    """A photo (any size, RGB, grey or RGBA) -> a 28x28 grey image, bright product on black, centred."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.width == 0 or image.height == 0:
        raise BadInputError("the image is empty (0 pixels)")
    if is_fashion_form(image):
        return image.convert("L")
    rgb_image = flatten(image)
    rgb = np.asarray(rgb_image)
    background = background_color(rgb)
    box = content_box(rgb, background)
    if box is None:
        raise BadInputError("the image is one flat colour: there is no product to find; photograph it against a "
                            "plain background, or draw it darker than the canvas")
    product = rgb_image.crop(box)
    scale = SIZE / max(product.size)
    size = (max(1, round(product.width * scale)), max(1, round(product.height * scale)))
    product = product.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    product = product.filter(ImageFilter.UnsharpMask(radius=1.0, percent=100, threshold=0))
    canvas = Image.new("RGB", (SIZE, SIZE), tuple(int(round(c)) for c in background))
    canvas.paste(product, ((SIZE - product.width) // 2, (SIZE - product.height) // 2))
    gray = np.asarray(canvas.convert("L"), np.float32)
    bg_gray = float(np.dot(background, (0.299, 0.587, 0.114)))  # Pillow's own RGB -> L weights
    if bg_gray >= 128:  # dark product on a light background: negate so the background becomes black
        out = (bg_gray - gray) * (255.0 / max(bg_gray, 1.0))
    else:  # already a light product on a dark background
        out = (gray - bg_gray) * (255.0 / max(255.0 - bg_gray, 1.0))
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8))
