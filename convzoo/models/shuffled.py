"""A model that sees its input's pixels in one fixed shuffled order (the shuffled-pixels experiment).

The shuffle is the model's first operation, so it comes after augmentation and normalisation in training
(shuffling is then the only difference from the plain model) and is exported into the ONNX graph as a
``Gather``: the file takes plain images, as its metadata says, and gives the shuffled model's prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.permutation import pixel_permutation


class PixelShuffled(nn.Module):
    def __init__(self, inner: nn.Module, seed: int, height: int, width: int) -> None:
        super().__init__()
        self.inner = inner
        self.seed = seed
        self.register_buffer("permutation", torch.from_numpy(pixel_permutation(seed, height * width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shuffled = x.flatten(2).index_select(2, self.permutation).view_as(x)
        return self.inner(shuffled)
