"""The shuffled-pixels experiment's one fixed permutation (torch-free: the app shows it, training applies it).

The lecture asks: "What would you do if the pixels were randomly shuffled?" A multilayer perceptron
should not care, since permuting its inputs only relabels its first layer's weights; a CNN should, since
its filters assume that neighbouring pixels are related. ``lenet5-fashion-shuffled`` and
``mlp-fashion-shuffled`` are trained on images shuffled by ``pixel_permutation(seed, 28 * 28)``, and the
permutation is a ``Gather`` inside their ONNX graphs, so a plain image goes in as for any other model.
"""

from __future__ import annotations

import numpy as np


def pixel_permutation(seed: int, n: int) -> np.ndarray:
    """Output pixel i (row-major) is input pixel ``permutation[i]``; the same seed gives the same order everywhere."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def shuffle_pixels(image: np.ndarray, seed: int) -> np.ndarray:
    """An H x W (or H x W x C) image with its pixel positions shuffled as the shuffled models see it."""
    height, width = image.shape[:2]
    flat = image.reshape(height * width, *image.shape[2:])
    return flat[pixel_permutation(seed, height * width)].reshape(image.shape)
