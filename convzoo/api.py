"""The Python API at the top of the package, torch-free: ``convzoo.list_models`` and ``convzoo.load``.

>>> import convzoo
>>> convzoo.list_models(task="classification")[:2]
['alexnet-fashion', 'alexnet-fashion-int8']
>>> model = convzoo.load("lenet5-fashion")
>>> model.predict("shoe.png").label  # doctest: +SKIP
'Ankle boot'

``load`` verifies the file against its manifest's sha256 and shares one onnxruntime session per file,
providers and threads with the service and the app (``runtime.load_model``). ``predict`` takes a path,
a PIL image or a uint8 array and returns the typed result its task makes (``OnnxModel.predict``, the
one way the demos, the service and this API predict; the result types live in ``convzoo.tasks``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from convzoo import registry
from convzoo.errors import BadInputError
from convzoo.registry import Store
from convzoo.runtime import OnnxModel, load_model, read_image
from convzoo.tasks.classification import Classification, Prediction
from convzoo.tasks.segmentation import Segmentation
from convzoo.tasks.style import Stylized
from convzoo.types import TASKS

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]

__all__ = ["list_models", "load", "Model", "Classification", "Segmentation", "Stylized", "Prediction"]


class Model:
    """A stored model ready to run: ``predict(image)``, or ``run(batch)`` on a preprocessed NCHW batch."""

    def __init__(self, onnx: OnnxModel) -> None:
        self.onnx = onnx
        self.name: str = onnx.name
        self.task: str = onnx.task
        self.labels: list[str] = list(onnx.labels)
        self.metrics: Mapping[str, Any] = onnx.metrics

    def __repr__(self) -> str:
        return f"convzoo.Model({self.name!r}, task={self.task!r}, providers={self.providers})"

    @property
    def providers(self) -> list[str]:
        return self.onnx.session.get_providers()

    @property
    def path(self) -> Path:
        return self.onnx.path

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.onnx.run(batch)

    def predict(self, image: ImageLike, *, k: int = 5, max_side: int | None = 512
                ) -> Classification | Segmentation | Stylized:
        """Run the model on one image: a file path, a PIL image, or a uint8 array (H x W or H x W x C).

        ``k`` is the number of classes in a classification's ``top_k``; ``max_side`` shrinks a photo
        before a style net paints it (None keeps its size).
        """
        return self.onnx.predict(_as_image(image), k=k, max_side=max_side)


def _as_image(image: ImageLike) -> Image.Image | np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise BadInputError(f"expected a uint8 array of H x W or H x W x 1/3/4 pixels, got {image.dtype} "
                                f"{list(image.shape)}; convert with (x * 255).clip(0, 255).astype(np.uint8)")
        return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    raise BadInputError(f"expected a file path, a PIL image or a uint8 array, got {type(image).__name__}")


def list_models(task: str | None = None, store: Store | None = None) -> list[str]:
    """The names ``load`` can open: every whole model in the store (``$CONVZOO_HOME``, ``~/.cache/convzoo``,
    then the shipped models), optionally of one task. ``convzoo.registry.names()`` lists the registry."""
    if task is not None and task not in TASKS:
        raise BadInputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return (store if store is not None else Store()).names(task)


def load(name: str, providers: Sequence[str] | None = None, threads: int | None = None,
         store: Store | None = None) -> Model:
    """The stored model ``name``, verified against its sha256 (an unknown name gets close matches).

    ``providers`` are onnxruntime execution providers in order of preference (default: CUDA when the
    installed onnxruntime offers it, else CPU); ``threads`` caps onnxruntime's intra-op threads.
    """
    registry.validate_name(name)
    return Model(load_model(name, store, providers=providers, threads=threads))
