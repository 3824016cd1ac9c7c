"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE, 1998)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from convzoo.models import architecture

PAPER_INPUT = 32  # the paper's retina: MNIST's 28x28 digits centred in a 32x32 field


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A): f(1) = 1, f(-1) = -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


@architecture("lenet5")
class LeNet5(nn.Module):
    """LeNet-5 as LeCun et al. (1998) draw it in Fig. 2: a 32x32 input, C1 (6 maps, 5x5), S2 (2x2
    subsampling), C3 (16 maps, 5x5), S4, C5 (120 maps, 5x5 -> 1x1), F6 (84 units), one output per class.

    Smaller inputs are zero-padded to 32x32 inside the model, as the paper centred the 28x28 MNIST
    digits in a 32x32 field, so an exported model still takes ``input_size`` images.

    Where it differs from the paper: by default ReLU and max-pooling stand in for the scaled tanh and
    the trainable average subsampling (``activation="tanh"``, ``pooling="avg"`` give the paper's);
    C3 sees all six S2 maps rather than the paper's sparse connection table (Table I), a choice
    the paper made only to save computation in 1998; the output layer is linear, not Euclidean RBF
    units, so the model gives logits for cross-entropy.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, activation: Literal["relu", "tanh"] = "relu",
                 pooling: Literal["max", "avg"] = "max", input_size: int = 28) -> None:
        super().__init__()
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', not {activation!r}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        if not 0 < input_size <= PAPER_INPUT or (PAPER_INPUT - input_size) % 2:
            raise ValueError(f"input_size must be an even number of pixels up to {PAPER_INPUT}, not {input_size}")

        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if activation == "relu" else ScaledTanh()

        def pool() -> nn.Module:
            return nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)

        margin = (PAPER_INPUT - input_size) // 2
        self.features = nn.Sequential(
            nn.ZeroPad2d(margin),                                # 28 -> 32, as the paper centred MNIST digits
            nn.Conv2d(in_channels, 6, 5), act(), pool(),         # C1: 32 -> 28, S2: -> 14
            nn.Conv2d(6, 16, 5), act(), pool(),                  # C3: 14 -> 10, S4: -> 5
            nn.Conv2d(16, 120, 5), act(),                        # C5: 5 -> 1, a convolution in the paper
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), act(),   # F6
                                        nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
