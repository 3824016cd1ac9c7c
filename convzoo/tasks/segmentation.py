"""Semantic segmentation: mask logits per pixel, judged by pixel error (the ISBI 2012 challenge's,
the U-Net paper's headline); large inputs run overlap-tiled; the answer is a ``Segmentation``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK


@dataclass(frozen=True)
class Segmentation:
    """A class index per pixel (``mask``, H x W at the image's own size) and the class probabilities (C x H x W)."""

    mask: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    labels: list[str]

    @classmethod
    def of_probabilities(cls, probabilities: np.ndarray, labels: Sequence[str]) -> Segmentation:
        """Each pixel's most probable class; classes past ``labels`` are named by their index."""
        names = [labels[i] if i < len(labels) else str(i) for i in range(probabilities.shape[0])]
        return cls(probabilities.argmax(0).astype(np.uint8), probabilities, names)

    def fractions(self) -> dict[str, float]:
        """The share of pixels given to each class."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.labels))
        return {label: float(c) / self.mask.size for label, c in zip(self.labels, counts)}

    def mask_image(self) -> Image.Image:
        """The mask as a grey picture, classes spread evenly over 0..255 (membrane black for the U-Net)."""
        step = 255 // max(1, len(self.labels) - 1)
        return Image.fromarray((self.mask * step).astype(np.uint8))


def predict(model: Any, image: Any, **_: Any) -> Segmentation:
    return Segmentation.of_probabilities(model.segment(image), model.labels)


SEGMENTATION = tasks.Task(
    name="segmentation",
    output=OUTPUT_OF_TASK["segmentation"],
    output_name="mask_logits",
    metrics=(tasks.Metric("pixel_error", "pixel error", "lower"), tasks.Metric("dice", "Dice", "higher")),
    pipeline_tag="image-segmentation",
    suggested="unet-membranes",
    tiled=True,
    agreement="pixel_agreement",
    predict=predict,
    train="convzoo.training.segmentation:train_segmentation",
    evaluate="convzoo.segmentation_eval:evaluate_entry",
    ten_lines='Image.fromarray((out[0].argmax(0) * 255).astype(np.uint8)).save("mask.png")\n',
)
