"""ONNX Runtime sessions and the pre- and post-processing every consumer shares (no torch).

Everything a model needs is read from the ONNX file's own ``metadata_props`` (``convzoo.*``), so
the service, the demos and a user's ten-line script preprocess an image the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from convzoo.errors import BadInputError, IntegrityError
from convzoo.registry import Preprocess

MAX_PIXELS = 40_000_000  # Pillow's own bomb limit is ~89M; a 2-core CPU should not try either


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


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


class OnnxModel:
    """A convzoo ONNX file with its session and metadata: ``run`` a batch or ``predict`` an image."""

    def __init__(self, path: Path | str, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers_available(providers))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise IntegrityError(f"{self.path} is not a model onnxruntime can load: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: Mapping[str, str] = meta
        self.name = meta.get("convzoo.name", self.path.parent.name)
        self.task = meta.get("convzoo.task", "classification")
        self.labels: list[str] = json.loads(meta.get("convzoo.labels", "[]"))
        if "convzoo.preprocess" not in meta:
            raise IntegrityError(f"{self.path} has no convzoo.preprocess metadata; it was not exported by convzoo")
        self.preprocess_spec = Preprocess.from_json(json.loads(meta["convzoo.preprocess"]))
        self.output_spec: dict[str, Any] = json.loads(meta.get("convzoo.output", '{"kind": "logits"}'))
        self.metrics: dict[str, Any] = json.loads(meta.get("convzoo.metrics", "{}"))
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0]

    def __repr__(self) -> str:
        return f"OnnxModel({self.name!r}, task={self.task!r}, providers={self.session.get_providers()})"

    @property
    def input_shape(self) -> list[int | str | None]:
        return list(self.input.shape)

    def preprocess(self, image: Image.Image | np.ndarray) -> np.ndarray:
        return preprocess_image(image, self.preprocess_spec)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a preprocessed NCHW float32 batch."""
        return self.session.run([self.output.name], {self.input.name: np.ascontiguousarray(batch, np.float32)})[0]

    # classification ---------------------------------------------------------------------------

    def probabilities(self, image: Image.Image | np.ndarray) -> np.ndarray:
        return softmax(self.run(self.preprocess(image)))[0]

    def top_k(self, image: Image.Image | np.ndarray, k: int = 5) -> dict[str, float]:
        probs = self.probabilities(image)
        order = np.argsort(-probs)[:k]
        return {self.labels[i] if i < len(self.labels) else str(i): float(probs[i]) for i in order}

    # segmentation -----------------------------------------------------------------------------

    def segment(self, image: Image.Image | np.ndarray, tile: int = 512, overlap: int = 64) -> np.ndarray:
        """Per-pixel class probabilities, CxHxW, at the image's own size; large images are overlap-tiled
        with mirrored borders, as the U-Net paper does, so memory stays bounded."""
        from convzoo.segmentation_eval import segment_tiled  # that module imports this one

        return segment_tiled(self, image, tile=tile, overlap=overlap)

    # style ------------------------------------------------------------------------------------

    def stylize(self, image: Image.Image | np.ndarray, max_side: int | None = 512) -> Image.Image:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image = to_rgb_or_gray(image, "rgb")
        if max_side and max(image.size) > max_side:
            image = image.copy()
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = self.run(self.preprocess(image))[0]
        low, high = self.output_spec.get("range", [0, 255])
        pixels = (out.transpose(1, 2, 0) - low) * (255.0 / (high - low))
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)[: image.height, : image.width])

