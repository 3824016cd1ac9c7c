"""The image view: the by-hand view's filters and settings on a photo, feature maps on a diverging scale."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.demos import byhand, common, examples, plots
from convzoo.demos.common import as_sent, read_upload, readable_errors, safe_image
from convzoo.demos.playground.layer import LETTERS, Layer, Settings, parse_filters
from convzoo.errors import BadInputError, ConvzooError
from convzoo.sizes import Size

class Recent:
    """The last few results by their inputs: the same request twice (a tab shown, then its image mounted,
    or "Apply" pressed again) is drawn once, which matters on a 2-core CPU."""

    def __init__(self, size: int = 8) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    @staticmethod
    def key(*values: Any) -> str:
        digest = hashlib.sha256()
        for value in values:
            if isinstance(value, np.ndarray) and value.dtype == object:  # exact Fractions: by value, not address
                digest.update(repr(value.tolist()).encode())
            elif isinstance(value, np.ndarray):
                digest.update(f"{value.shape}{value.dtype}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def get(self, key: str) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: str, value: Any) -> Any:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_IMAGE_VIEWS, _INSIDE_VIEWS, _FILTER_GRIDS = Recent(), Recent(), Recent()



_IMAGE_VIEWS = Recent()


def photo_pixels(value: Any) -> np.ndarray:
    """The photo as uint8 pixels, HxW or HxWxC, whatever form it arrives in (pixels from the page, a file or
    upload from the API): files through the service's reader and limits (``read_upload``)."""
    if value is None:
        raise BadInputError("no image yet: upload one or choose an example")
    if isinstance(value, Image.Image):
        value = np.asarray(value)
    elif not isinstance(value, np.ndarray):
        value = np.asarray(read_upload(value))
    if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (1, 2, 3, 4)) or 0 in value.shape:
        raise BadInputError(f"the image must be rows x columns of grey or colour pixels, got shape {value.shape}")
    if value.shape[0] * value.shape[1] > common.UPLOAD_LIMITS.max_pixels:
        raise BadInputError(f"the image has {value.shape[0]}x{value.shape[1]} pixels, more than the limit of "
                            f"{common.UPLOAD_LIMITS.max_pixels:,}; scale it down first")
    return value if value.dtype == np.uint8 else np.clip(value, 0, 255).astype(np.uint8)


def image_settings(settings: Settings, height: int, width: int) -> Settings:
    """The by-hand limits hold on a photo too; padding and dilation are also bounded by the photo's own size
    (half its shorter side of padding at most doubles the picture; a gap wider than it sees nothing)."""
    side = min(height, width)
    Size("padding", 0, side // 2).parse(settings.padding, f"padding on a {height}x{width} image")
    Size("dilation", 1, side).parse(settings.dilation, f"dilation on a {height}x{width} image")
    return settings


@readable_errors
def image_view(pixels: Any, mode: str, max_side: Any, *layer: Any) -> tuple[Image.Image | None, str]:
    """The same filters on a photo: one row per filter, its map per channel, then the pooled maps."""
    if pixels is None:
        return None, "Upload an image or choose an example."
    try:
        chosen = Layer.from_values(layer)  # every setting and value bounded before any pixel is touched
        count = len(chosen.filters)
        weights, bias = parse_filters(list(chosen.filters), list(chosen.biases))
        side = sizes.IMAGE_VIEW_SIDE.parse(max_side)
        pixels = photo_pixels(pixels)
        key = Recent.key(pixels, mode == "grey", side, weights, bias, chosen.settings)
        if (known := _IMAGE_VIEWS.get(key)) is not None:
            return known
        pixels = examples.shrink(pixels, side)
        s = image_settings(chosen.settings, *pixels.shape[:2])
        if pixels.ndim == 3 and (mode == "grey" or pixels.shape[2] == 1):
            pixels = np.asarray(Image.fromarray(pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, 0])
                                .convert("L"))
        x = pixels.astype(np.float64) / 255  # pixels 0..1: outputs are in the filter's own units
        channels = [("grey", x)] if x.ndim == 2 else list(zip(("red", "green", "blue"), x[:, :, :3].transpose(2, 0, 1)))
        w, b = weights.astype(np.float64), bias.astype(np.float64)
        rows = []
        for f in range(count):
            maps, pooled = [], []
            for name, channel in channels:
                out = cv.conv2d(channel, w[f:f + 1], b[f:f + 1], stride=s.stride, padding=s.padding,
                                dilation=s.dilation)[0]
                out = cv.relu(out) if s.relu else out
                maps.append((f"{LETTERS[f]} on {name} {out.shape[0]}x{out.shape[1]}", out))
                if s.pool != "none":
                    p = cv.pool2d(out, s.pool, s.pool_size, s.pool_stride)
                    pooled.append((f"{name}, {s.pool}-pooled {p.shape[0]}x{p.shape[1]}", p))
            rows.append(maps + pooled)
        title = (f"{pixels.shape[0]}x{pixels.shape[1]} input · stride {s.stride} · padding {s.padding} · dilation "
                 f"{s.dilation}{' · ReLU' if s.relu else ''}")
        # large panels on a robust scale: a photo's few sharpest edges no longer wash the rest out (issue 23)
        figure = plots.map_grid(rows, scale="row", title=title, panel_inches=3.6 if len(channels) == 1 else 2.4,
                                robust=True)
        return _IMAGE_VIEWS.put(key, (figure, ""))
    except ConvzooError as e:
        return None, byhand.message(e)


@readable_errors
def load_example(name: str) -> np.ndarray:
    return examples.load(name, max_side=512)


IMAGE_NOTES = """
### The same filters on a photo
Every filter of the matrix view above, with its stride, padding, dilation, ReLU and pooling, applied to a
real image (pixels scaled to 0..1). Red is where the image looks like the filter, blue where it looks like its
opposite (a dark line where the filter wants a bright one), white is no response. The vertical-line filter lights
up on vertical edges wherever they are: one small filter, the whole image. Choose "per channel" to run each
filter on red, green and blue separately.
"""


def view(layer: list[gr.components.Component]) -> gr.Tab:
    with gr.Tab("On an image", id="on-image") as this:
        gr.Markdown(IMAGE_NOTES)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                example = gr.Dropdown(examples.names(), value="camera (grey)", label="Example image")
                photo = safe_image(value=load_example("camera (grey)"), label="Image (upload your own)",
                                   type="numpy", image_mode=None, format="png", height=260, elem_id="pg-photo")
                mode = gr.Radio(["grey", "per channel"], value="grey", label="Channels")
                max_side = as_sent(gr.Slider(sizes.IMAGE_VIEW_SIDE.low, sizes.IMAGE_VIEW_SIDE.high, value=256, step=16,
                                     label="Scale the image down to (pixels)",
                                     info="padding at most half, dilation at most all of its shorter side"))
                apply = gr.Button("Apply the filters", variant="primary")
            with gr.Column(scale=3):
                maps = gr.Image(None, label="Feature maps (one row per filter)", type="pil", format="png",
                                interactive=False, elem_id="pg-maps", show_label=False)
                message = gr.Markdown("", elem_id="pg-image-message")
    gr.on([photo.change, mode.change, max_side.release, apply.click, this.select], image_view,
          [photo, mode, max_side, *layer], [maps, message], api_name="filter_image", trigger_mode="always_last")
    example.change(load_example, example, photo, api_name="load_example")
    return this

