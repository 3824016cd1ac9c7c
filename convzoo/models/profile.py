"""Model size and cost: parameters, and multiply-accumulates counted by PyTorch's own FLOP counter."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters (not buffers such as batch-norm statistics), as torchvision's ``num_params``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one eval-mode forward pass on an input of ``input_shape`` (with the batch
    axis, e.g. ``(1, 1, 28, 28)``): FlopCounterMode counts 2 FLOPs per multiply-accumulate in
    convolutions and matrix products; pooling, norms and activations are not counted (as torchvision's
    ``_ops`` and most papers). Works on a model on the meta device, so large models cost no compute."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(tuple(input_shape), device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
