"""A multilayer perceptron: the baseline of the shuffled-pixels experiment (no notion of neighbours at all)."""

from __future__ import annotations

import torch
from torch import nn

from convzoo.models import architecture


@architecture("mlp")
class MLP(nn.Module):
    """Flatten, then fully connected layers with ReLU. The default widths (76, 32) give 62,454 parameters for
    28x28 grey images, LeNet-5's order (61,706), so the experiment compares structure, not size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
                 hidden: tuple[int, ...] = (76, 32)) -> None:
        super().__init__()
        widths = [in_channels * input_size * input_size, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)
