"""The ISBI 2012 scores on class maps (0 = membrane, 1 = cell), numpy only: the evaluation (onnxruntime)
and the training loop (torch) both score with these, and neither pulls in the other's runtime.
"""

from __future__ import annotations

import numpy as np

MEMBRANE, CELL = 0, 1
PUBLISHED = {"source": "Ronneberger et al. 2015, ISBI 2012 challenge (private test labels)",
             "pixel_error": 0.0611, "rand_error": 0.0382, "warping_error": 0.000353}


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
