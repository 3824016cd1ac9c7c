"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural
networks", NeurIPS 2012)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from convzoo.models import architecture


@architecture("alexnet")
class AlexNet(nn.Module):
    """AlexNet for 224x224 RGB ImageNet images: five convolutions (11x11 stride 4, 5x5, three 3x3) with
    ReLU and overlapping 3x3 stride-2 max-pooling, then three dropout-regularised fully connected layers.

    Layer for layer torchvision's ``alexnet`` (same parameter names and shapes, so its ImageNet weights
    load): the single-GPU widths 64-192-384-256-256 of Krizhevsky's "One weird trick" (2014), without the
    paper's local response normalisation, which later work found adds little.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@architecture("alexnet_small")
class AlexNetSmall(nn.Module):
    """AlexNet (Krizhevsky et al., 2012) for 28x28 grey or 32x32 RGB images.

    Kept from the paper: five convolutions (a 5x5 then 3x3s) with ReLU, overlapping 3x3 stride-2
    max-pooling after the first two, a normalisation layer after the early convolutions, and three
    fully connected layers with dropout 0.5. Changed, and why:

    - Stem: the paper's 11x11 stride-4 convolution would shrink a 28x28 image to 6x6 at once; here a
      5x5 stride-1 convolution keeps the full resolution (28 -> 13 -> 6 -> 3 after the three pools).
    - Widths: ``width`` sets the first layer (32 by default), the rest keep torchvision's ratios
      (1 : 3 : 6 : 4 : 4, i.e. 32-96-192-128-128), and the hidden layers have 16 x ``width`` units
      instead of 4096, so the exported model stays near 6 MB.
    - Pooling: the last pool is 2x2 (3x3 stride 2 would leave 28x28 inputs at 2x2 but 32x32 ones at
      3x3); both sizes reach 3x3, and an adaptive average pool to 3x3 (as torchvision's to 6x6) keeps
      other sizes working.
    - Normalisation: ``norm="batch"`` (default) puts batch norm after every convolution, the modern
      stand-in for the paper's local response normalisation, which lets the recipe train at a high
      learning rate; ``norm="lrn"`` uses the paper's LRN (k=2, n=5, alpha=1e-4, beta=0.75) after the
      first two convolutions; ``norm="none"`` uses neither.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.5,
                 norm: Literal["batch", "lrn", "none"] = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "lrn", "none"):
            raise ValueError(f"norm must be 'batch', 'lrn' or 'none', not {norm!r}")
        c1, c2, c3, c4, c5 = width, 3 * width, 6 * width, 4 * width, 4 * width
        hidden = 16 * width

        def conv(cin: int, cout: int, kernel: int, lrn: bool = False) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=norm != "batch")]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            if norm == "lrn" and lrn:
                layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
            return layers

        self.features = nn.Sequential(
            *conv(in_channels, c1, 5, lrn=True), nn.MaxPool2d(kernel_size=3, stride=2),   # 28 -> 13
            *conv(c1, c2, 5, lrn=True), nn.MaxPool2d(kernel_size=3, stride=2),           # 13 -> 6
            *conv(c2, c3, 3), *conv(c3, c4, 3), *conv(c4, c5, 3),
            nn.MaxPool2d(kernel_size=2, stride=2),                                       # 6 -> 3
        )
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(c5 * 3 * 3, hidden), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
