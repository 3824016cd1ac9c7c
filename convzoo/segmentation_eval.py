"""Membrane segmentation, evaluated with onnxruntime alone (no torch): pixel error, Rand error, Dice.

The ISBI 2012 challenge scored maps of "cell" probability: pixel error is the fraction of
pixels whose class is wrong; the foreground-restricted Rand error compares the connected cell
regions of prediction and truth (``skimage.metrics.adapted_rand_error``, which leaves out the
pixels that are membrane in the truth). Large images are segmented with the U-Net paper's
overlap-tile strategy: mirrored borders, overlapping tiles, and only each tile's well-informed
centre counted in full.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from convzoo.runtime import OnnxModel, softmax

MEMBRANE, CELL = 0, 1
PUBLISHED = {"source": "Ronneberger et al. 2015, ISBI 2012 challenge (private test labels)",
             "pixel_error": 0.0611, "rand_error": 0.0382, "warping_error": 0.000353}


def _tile_weights(height: int, width: int) -> np.ndarray:
    """Highest in the middle, small at the edges: blending prefers each tile's centre (context on all sides)."""
    ramp = lambda n: np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32)  # noqa: E731
    return np.outer(ramp(height), ramp(width)) / max(height, width)


_OUTPUT_SHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_shape(model: OnnxModel, channels: int, tile: int) -> tuple[int, int]:
    """(output side, classes) for a square input tile: one probe run per model and tile, then remembered."""
    known = _OUTPUT_SHAPES.setdefault(model, {})
    if tile not in known:
        probe = model.run(np.zeros((1, channels, tile, tile), np.float32))
        known[tile] = (int(probe.shape[-1]), int(probe.shape[1]))
    return known[tile]


def segment_tiled(model: OnnxModel, image, tile: int = 512, overlap: int = 64, batch: int = 4) -> np.ndarray:
    """Class probabilities C x H x W for an image of any size, segmented tile by tile.

    The image is mirrored at its borders, cut into ``tile``-sized input tiles that overlap by
    ``overlap`` pixels, and the tiles' softmax outputs are blended with weights that favour tile
    centres. Same-padding models (output as large as input) and the paper's valid-padding ones
    (output smaller: the missing margin is read from the mirrored border) both work; the tile is
    rounded up to the model's ``convzoo.size_multiple``.
    """
    x = model.preprocess(image)[0]  # C x H x W, normalised as the model's metadata says
    channels, height, width = x.shape
    multiple = int(json.loads(model.metadata.get("convzoo.size_multiple", "1")))
    tile = -(-tile // multiple) * multiple
    out_tile, classes = _output_shape(model, channels, tile)
    margin = (tile - out_tile) // 2  # valid padding: context each output pixel needs beyond the tile's output
    if margin == 0 and max(height, width) < tile:  # a small image needs no tile larger than itself
        tile = out_tile = -(-max(height, width) // multiple) * multiple
    overlap = min(overlap, out_tile // 2)
    step = out_tile - overlap
    rows = max(1, -(-(height - overlap) // step))
    cols = max(1, -(-(width - overlap) // step))
    full_h, full_w = (rows - 1) * step + out_tile, (cols - 1) * step + out_tile
    pad = ((0, 0), (margin, margin + full_h - height), (margin, margin + full_w - width))
    padded = np.pad(x, pad, mode="symmetric")  # the paper mirrors; symmetric also works when pad > side
    total = np.zeros((classes, full_h, full_w), np.float32)
    weight_sum = np.zeros((full_h, full_w), np.float32)
    weights = _tile_weights(out_tile, out_tile)
    corners = [(r * step, c * step) for r in range(rows) for c in range(cols)]
    for start in range(0, len(corners), batch):
        chunk = corners[start:start + batch]
        tiles = np.stack([padded[:, top:top + tile, left:left + tile] for top, left in chunk])
        probs = softmax(model.run(tiles), axis=1)
        for (top, left), p in zip(chunk, probs):
            total[:, top:top + out_tile, left:left + out_tile] += p * weights
            weight_sum[top:top + out_tile, left:left + out_tile] += weights
    return (total / weight_sum)[:, :height, :width]


# ----------------------------------------------------------------------------------------------
# metrics on class maps (0 = membrane, 1 = cell)


def pixel_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(prediction) != np.asarray(truth)))


def dice(prediction: np.ndarray, truth: np.ndarray, cls: int = MEMBRANE) -> float:
    p, t = np.asarray(prediction) == cls, np.asarray(truth) == cls
    denominator = p.sum() + t.sum()
    return float(2 * (p & t).sum() / denominator) if denominator else 1.0


def rand_error(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground-restricted Rand error of the connected cell regions (ISBI 2012's Rand score: 1 - F)."""
    from skimage.measure import label
    from skimage.metrics import adapted_rand_error

    true_regions = label(np.asarray(truth) == CELL, connectivity=1, background=0)
    predicted_regions = label(np.asarray(prediction) == CELL, connectivity=1, background=0)
    error, precision, recall = adapted_rand_error(true_regions, predicted_regions, ignore_labels=(0,))
    return {"rand_error": float(error), "rand_precision": float(precision), "rand_recall": float(recall)}


def score(predictions: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Mean over sections, as the challenge averaged over its test slices."""
    per = [{"pixel_error": pixel_error(p, t), "dice": dice(p, t), **rand_error(p, t)}
           for p, t in zip(predictions, truths)]
    return {key: float(np.mean([m[key] for m in per])) for key in per[0]}


def held_out_count(model_name: str, default: int = 5) -> int:
    from convzoo import registry

    try:
        return int(registry.get(model_name).recipe.val_split) or default
    except Exception:  # a model the registry does not know: the ISBI recipe's hold-out
        return default


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
