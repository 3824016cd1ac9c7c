"""Membrane segmentation, evaluated with onnxruntime alone (no torch): pixel error, Rand error, Dice.

The ISBI 2012 challenge scored maps of "cell" probability: pixel error is the fraction of
pixels whose class is wrong; the foreground-restricted Rand error compares the connected cell
regions of prediction and truth (``skimage.metrics.adapted_rand_error``, which leaves out the
pixels that are membrane in the truth). Large images are segmented with the U-Net paper's
overlap-tile strategy: mirrored borders, overlapping tiles, and only each tile's well-informed
centre counted in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convzoo import registry
from convzoo.errors import UnknownModelError
from convzoo.runtime import OnnxModel, segment_tiled
from convzoo.segmentation_metrics import PUBLISHED, score
from convzoo.types import ModelEntry

def held_out_count(model_name: str, default: int = 5) -> int:
    try:
        return int(registry.get(model_name).recipe.val_split) or default
    except UnknownModelError:  # a model the registry does not know: the ISBI recipe's hold-out
        return default


def evaluate_entry(entry: ModelEntry, model: OnnxModel, data_dir: str | Path | None,
                   limit: int | None) -> tuple[dict[str, Any], None]:
    """The segmentation task's evaluate hook (``convzoo.tasks``): the held-out sections' scores."""
    return evaluate_segmentation(model, data_dir=data_dir), None


def evaluate_segmentation(model: OnnxModel, data_dir: str | Path | None = None, sections: list[int] | None = None,
                          tile: int = 512, overlap: int = 64) -> dict[str, Any]:
    """Pixel error, Rand error and membrane Dice of an ONNX model on labelled sections.

    ``sections`` are indices into the folder's labelled pairs (natural order); by default the
    held-out ones: the last ``recipe.val_split`` of the model's registry entry, which training
    never saw.
    """
    from convzoo.data.membranes import read_sections

    data = read_sections(data_dir)
    if sections is None:
        count = held_out_count(model.name)
        sections = list(range(len(data) - count, len(data)))
    predictions, truths = [], []
    for i in sections:
        probabilities = segment_tiled(model, data.images[i], tile=tile, overlap=overlap)
        predictions.append(probabilities.argmax(0).astype(np.uint8))
        truths.append(data.labels[i])
    metrics = score(predictions, truths)
    return {"dataset": Path(data.source).name, "split": "held-out", "sections": [data.names[i] for i in sections],
            "n": len(sections), **metrics, "published_unet_isbi": PUBLISHED}
