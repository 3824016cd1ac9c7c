"""Data sets and batched augmentations.

This package imports no torch at import time: ``convzoo.data.idx`` (the numpy idx reader) is used by
the onnxruntime evaluation too. The torch side -- ``fashion_mnist`` (in-memory tensors, the
validation hold-out, ``load_classification``), ``torchvision_sets`` (MNIST, CIFAR-10) and
``transforms`` -- is imported where it is used.
"""

from __future__ import annotations

from convzoo.data.idx import HOW_TO_GET, find_fashion_mnist, load_split, read_idx

__all__ = ["HOW_TO_GET", "find_fashion_mnist", "load_split", "read_idx"]
