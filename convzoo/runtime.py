"""ONNX Runtime sessions and the pre- and post-processing every consumer shares (no torch).

Everything a model needs is read from the ONNX file's own ``metadata_props`` (``convzoo.*``, typed
as ``ModelMetadata``), so the service, the demos and a user's ten-line script preprocess an image the
same way. Sessions are cached here by file, sha256, providers and threads (``load``); large images
are segmented tile by tile (``segment_tiled``, ``run_tiled``) so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from convzoo import bounds, tasks
from convzoo.tasks.classification import Classification, softmax
from convzoo.tasks.segmentation import Segmentation
from convzoo.tasks.style import Stylized
from convzoo.errors import BadInputError, IntegrityError
from convzoo.registry import Store
from convzoo.types import ModelMetadata, Preprocess

MAX_PIXELS = bounds.ImageLimits().max_pixels  # the one limit of the service's reader, the app's and the API's


def providers_available(prefer: Sequence[str] | None = None) -> list[str]:
    """CUDA when onnxruntime-gpu is installed and a GPU is present, else CPU."""
    available = ort.get_available_providers()
    wanted = prefer or ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available]
    return chosen or ["CPUExecutionProvider"]


def cpu_session(model) -> ort.InferenceSession:
    """A CPU session for an in-memory ``onnx.ModelProto`` (export checks, calibration), not a stored file."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def to_rgb_or_gray(image: Image.Image, color: str) -> Image.Image:
    """Flatten transparency onto white (how viewers show it) and convert to the model's colour mode."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if color == "gray" else "RGB")


def resize_for(image: Image.Image, pre: Preprocess) -> Image.Image:
    if pre.size is None:
        return image
    height, width = pre.size
    if pre.crop_pct < 1.0:  # resize the shorter side, then centre-crop (torchvision's ImageNet eval transform)
        shorter = round(min(height, width) / pre.crop_pct)
        scale = shorter / min(image.size)
        image = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
        return ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BILINEAR)


def normalize_batch(pixels: np.ndarray, pre: Preprocess) -> np.ndarray:
    """``(pixel * scale - mean) / std`` per channel; pixels NxHxW or NxHxWxC in 0..255 -> NxCxHxW float32.

    The one implementation of the ``convzoo.preprocess`` arithmetic on this side: inference, evaluation,
    export parity and INT8 calibration all call it (training has its torch twin in ``data.transforms``).
    """
    x = pixels.astype(np.float32)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    mean = np.asarray(pre.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(pre.std, np.float32).reshape(1, -1, 1, 1)
    return ((x * np.float32(pre.scale) - mean) / std).astype(np.float32)


def normalize(pixels: np.ndarray, pre: Preprocess) -> np.ndarray:
    """One image, HxW or HxWxC in 0..255 -> 1xCxHxW float32."""
    return normalize_batch(pixels[None], pre)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An image file decoded upright into memory, checked (bytes, pixels, JPEG scans) before any pixel is
    decoded: ``convzoo.bounds.read_image``, the reader the service and the app use too."""
    return bounds.read_image(path, dataclasses.replace(bounds.ImageLimits(), max_pixels=max_pixels))


def preprocess_image(image: Image.Image | np.ndarray, pre: Preprocess) -> np.ndarray:
    """One image (PIL, or a uint8 array HxW / HxWxC) to a 1xCxHxW float32 batch as the model expects."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise BadInputError(f"expected a uint8 pixel array, got {image.dtype}")
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise BadInputError(f"expected an image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise BadInputError("the image is empty (0 pixels)")
    if image.width * image.height > MAX_PIXELS:
        raise BadInputError(f"the image has {image.width}x{image.height} pixels, more than the limit of "
                            f"{MAX_PIXELS:,}; scale it down first")
    image = resize_for(to_rgb_or_gray(image, pre.color), pre)
    return normalize(np.asarray(image), pre)


MIN_STYLE_SIDE = tasks.get("style").min_side


def style_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size a style net renders a ``width`` x ``height`` image at (its longest side brought down to
    ``max_side``), refused before any work where a side would fall below ``MIN_STYLE_SIDE``: the nets'
    reflection padding needs a few pixels on each side, and a 16 x 40,000 strip would become 1 x 512."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    out = max(1, round(width * scale)), max(1, round(height * scale))
    if math.floor(min(width, height) * scale) < MIN_STYLE_SIDE:
        shown = f" (brought to {out[0]}x{out[1]} to fit {max_side} pixels)" if scale < 1 else ""
        raise BadInputError(f"the image is {width}x{height}{shown}; a style net needs at least {MIN_STYLE_SIDE} "
                            "pixels on each side: crop it closer to a square, or send a larger one")
    return out


def shrinking_run_options() -> ort.RunOptions:
    """Run options that give the CPU arena's memory back after the run (for runs far above the usual)."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


class OnnxModel:
    """A convzoo ONNX file with its session and metadata: ``run`` a batch or ``predict`` an image."""

    def __init__(self, path: Path | str | bytes, providers: Sequence[str] | None = None, threads: int | None = None,
                 spin: bool = True) -> None:
        """``path``: a model.onnx, or a serialised model's bytes (export evaluates what it is about to write)."""
        in_memory = isinstance(path, bytes)
        self.path = Path("<in memory>") if in_memory else Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spin:  # idle intra-op threads sleep instead of busy-waiting for the next run
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(path if in_memory else str(self.path), options,
                                                providers=providers_available(providers))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise IntegrityError(f"{self.path} is not a model onnxruntime can load: {e}") from e
        self.metadata: Mapping[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.meta = ModelMetadata.from_props(self.metadata, where=str(self.path))
        self.name = self.meta.name or self.path.parent.name
        self.task = self.meta.task
        self.labels: list[str] = list(self.meta.labels)
        self.preprocess_spec = self.meta.preprocess
        self.metrics = dict(self.meta.metrics)
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0]

    def __repr__(self) -> str:
        return f"OnnxModel({self.name!r}, task={self.task!r}, providers={self.session.get_providers()})"

    @property
    def input_shape(self) -> list[int | str | None]:
        return list(self.input.shape)

    def preprocess(self, image: Image.Image | np.ndarray) -> np.ndarray:
        return preprocess_image(image, self.preprocess_spec)

    def run(self, batch: np.ndarray, shrink_arena: bool = False) -> np.ndarray:
        """The first output for a preprocessed NCHW float32 batch; ``shrink_arena`` hands the memory of a
        large run back to the system afterwards instead of keeping it in onnxruntime's arena."""
        options = shrinking_run_options() if shrink_arena else None
        return self.session.run([self.output.name], {self.input.name: np.ascontiguousarray(batch, np.float32)},
                                options)[0]

    def predict(self, image: Image.Image | np.ndarray, *, k: int = 5, max_side: int | None = 512
                ) -> Classification | Segmentation | Stylized:
        """The typed answer for one image, made by the model's task (``convzoo.tasks``): a ``Classification``
        (``k`` best labels), a ``Segmentation`` (mask and probabilities at the image's size) or a
        ``Stylized`` image (its longest side brought down to ``max_side``)."""
        return tasks.get(self.task).predict(self, image, k=k, max_side=max_side)

    # classification ---------------------------------------------------------------------------

    def probabilities(self, image: Image.Image | np.ndarray) -> np.ndarray:
        return self.predict(image, k=0).probabilities

    def top_k(self, image: Image.Image | np.ndarray, k: int = 5) -> dict[str, float]:
        """``predict(image, k=k).as_dict()``: label -> probability, best first."""
        return self.predict(image, k=k).as_dict()

    # segmentation -----------------------------------------------------------------------------

    def segment(self, image: Image.Image | np.ndarray, tile: int = 512, overlap: int = 64) -> np.ndarray:
        """Per-pixel class probabilities, CxHxW, at the image's own size; large images are overlap-tiled
        with mirrored borders, as the U-Net paper does, so memory stays bounded."""
        return segment_tiled(self, image, tile=tile, overlap=overlap)

    # style ------------------------------------------------------------------------------------

    def stylize(self, image: Image.Image | np.ndarray, max_side: int | None = 512,
                shrink_arena: bool = False) -> Image.Image:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        style_size(image.width, image.height, max_side)
        image = to_rgb_or_gray(image, "rgb")
        if max_side and max(image.size) > max_side:
            image = image.copy()
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = self.run(self.preprocess(image), shrink_arena)[0]
        low, high = self.meta.output.range or (0.0, 255.0)
        pixels = (out.transpose(1, 2, 0) - low) * (255.0 / (high - low))
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)[: image.height, : image.width])



# ----------------------------------------------------------------------------------------------
# sessions, one per file, providers and threads


class _SessionKey(NamedTuple):
    path: str
    sha256: str
    providers: tuple[str, ...]
    threads: int | None
    spin: bool


_SESSIONS: dict[_SessionKey, OnnxModel] = {}
_SESSIONS_LOCK = threading.Lock()


def load_model(name: str, store: Store | None = None, *, providers: Sequence[str] | None = None,
         threads: int | None = None, spin: bool = True) -> OnnxModel:
    """The model ``name`` from the store, verified against its sha256; one cached session per file,
    providers, threads and ``spin`` (a second ``load_model`` with other threads gets its own session).
    ``spin=False``: onnxruntime's idle threads sleep rather than spin, which a server wants (the CPU goes
    to the requests in between runs)."""
    stored = (store if store is not None else Store()).get(name)
    stored.verify()
    key = _SessionKey(str(stored.onnx_path.resolve()), stored.sha256, tuple(providers_available(providers)), threads,
                      spin)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = OnnxModel(stored.onnx_path, providers=key.providers, threads=threads, spin=spin)
        return _SESSIONS[key]


# ----------------------------------------------------------------------------------------------
# tiling: images of any size through a fully convolutional model, in bounded memory


def _tile_weights(height: int, width: int) -> np.ndarray:
    """Highest in the middle, small at the edges: blending prefers each tile's centre (context on all sides)."""
    ramp = lambda n: np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32)
    return np.outer(ramp(height), ramp(width)) / max(height, width)


_OUTPUT_SHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_shape(model: OnnxModel, channels: int, tile: int) -> tuple[int, int]:
    """(output side, classes) for a square input tile: one probe run per model and tile, then remembered."""
    known = _OUTPUT_SHAPES.setdefault(model, {})
    if tile not in known:
        probe = model.run(np.zeros((1, channels, tile, tile), np.float32), shrink_arena=True)
        known[tile] = (int(probe.shape[-1]), int(probe.shape[1]))
    return known[tile]


@dataclass(frozen=True)
class TilePlan:
    """How ``run_tiled`` cuts one C x H x W input: known before a pixel is run, so its cost is too.

    The run happens on the mirrored, padded input (``padded_*``), tile by tile (``tiles`` runs of
    ``tile`` x ``tile``); its blended outputs are ``classes`` x ``full_*``. A thin input (16 x 99,984) is
    padded to whole tiles, so it costs far more than its own pixels: these figures say how much.
    """

    channels: int
    height: int
    width: int
    tile: int
    out_tile: int
    classes: int
    margin: int
    overlap: int
    rows: int
    cols: int

    @property
    def step(self) -> int:
        return self.out_tile - self.overlap

    @property
    def full(self) -> tuple[int, int]:
        return (self.rows - 1) * self.step + self.out_tile, (self.cols - 1) * self.step + self.out_tile

    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    @property
    def run_pixels(self) -> int:
        """Pixels the model runs on, all tiles together: what the run's time grows with."""
        return self.tiles * self.tile * self.tile

    def array_bytes(self, batch: int) -> int:
        """float32 bytes of the arrays ``run_tiled`` holds besides the model's own activations: the padded
        input, a batch of tiles, the blended outputs and their weights, and the cropped result."""
        full_h, full_w = self.full
        padded = self.channels * (full_h + 2 * self.margin) * (full_w + 2 * self.margin)
        blended = (self.classes + 1) * full_h * full_w
        result = self.classes * self.height * self.width
        tiles = batch * (self.channels * self.tile * self.tile + self.classes * self.out_tile * self.out_tile)
        return 4 * (padded + blended + result + tiles)


def plan_tiles(model: OnnxModel, channels: int, height: int, width: int, tile: int = 512,
               overlap: int = 64) -> TilePlan:
    """The tiling ``run_tiled`` will use for a ``channels`` x ``height`` x ``width`` input (one probe run
    per model and tile size tells the model's output size, then it is remembered)."""
    multiple = model.meta.size_multiple
    tile = -(-tile // multiple) * multiple
    out_tile, classes = _output_shape(model, channels, tile)
    margin = (tile - out_tile) // 2
    if margin == 0 and max(height, width) < tile:  # a small image needs no tile larger than itself
        tile = out_tile = -(-max(height, width) // multiple) * multiple
    overlap = min(overlap, out_tile // 2)
    step = out_tile - overlap
    rows = max(1, -(-(height - overlap) // step))
    cols = max(1, -(-(width - overlap) // step))
    return TilePlan(channels, height, width, tile, out_tile, classes, margin, overlap, rows, cols)


def run_tiled(model: OnnxModel, x: np.ndarray, tile: int = 512, overlap: int = 64, batch: int = 4,
              probabilities: bool = False, shrink_arena: bool = False) -> np.ndarray:
    """The model's output for one preprocessed C x H x W input of any size, computed tile by tile.

    The input is mirrored at its borders, cut into ``tile``-sized tiles that overlap by ``overlap``
    pixels, and the tiles' outputs (softmax first with ``probabilities``) are blended with weights
    that favour tile centres, the U-Net paper's overlap-tile strategy. Same-padding models (output
    as large as input) and valid-padding ones (the missing margin is read from the mirrored border)
    both work; the tile is rounded up to the model's ``convzoo.size_multiple``. Peak memory is a
    few tiles plus the output (``plan_tiles(...).array_bytes``), known before the run; ``shrink_arena``
    hands onnxruntime's arena memory back after the last tile (a server's budget assumes it does).
    """
    channels, height, width = x.shape
    plan = plan_tiles(model, channels, height, width, tile, overlap)
    tile, out_tile, margin, step = plan.tile, plan.out_tile, plan.margin, plan.step
    full_h, full_w = plan.full
    pad = ((0, 0), (margin, margin + full_h - height), (margin, margin + full_w - width))
    padded = np.pad(x, pad, mode="symmetric")  # the paper mirrors; symmetric also works when pad > side
    total = np.zeros((plan.classes, full_h, full_w), np.float32)
    weight_sum = np.zeros((full_h, full_w), np.float32)
    weights = _tile_weights(out_tile, out_tile)
    corners = [(r * step, c * step) for r in range(plan.rows) for c in range(plan.cols)]
    for start in range(0, len(corners), batch):
        chunk = corners[start:start + batch]
        tiles = np.stack([padded[:, top:top + tile, left:left + tile] for top, left in chunk])
        out = model.run(tiles, shrink_arena=shrink_arena and start + batch >= len(corners))
        if probabilities:
            out = softmax(out, axis=1)
        for (top, left), p in zip(chunk, out):
            total[:, top:top + out_tile, left:left + out_tile] += p * weights
            weight_sum[top:top + out_tile, left:left + out_tile] += weights
    return (total / weight_sum)[:, :height, :width]


def segment_tiled(model: OnnxModel, image, tile: int = 512, overlap: int = 64, batch: int = 4,
                  shrink_arena: bool = False) -> np.ndarray:
    """Class probabilities C x H x W for an image of any size, segmented tile by tile (``run_tiled``)."""
    return run_tiled(model, model.preprocess(image)[0], tile=tile, overlap=overlap, batch=batch, probabilities=True,
                     shrink_arena=shrink_arena)
