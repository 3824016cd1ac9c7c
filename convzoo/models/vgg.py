"""VGG (Simonyan & Zisserman, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015): configurations A (VGG-11) and D (VGG-16), with and without batch normalisation."""

from __future__ import annotations

import torch
from torch import nn

from convzoo.models import architecture

# Table 1 of the paper: 3x3 convolution widths, "M" a 2x2 stride-2 max-pool.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
# The small variants keep the first three pools only: see VGGSmall.
SMALL_POOLS = 3


def make_layers(config: list[int | str], in_channels: int, batch_norm: bool, scale: float = 1.0,
                pools: int | None = None) -> nn.Sequential:
    """The convolutional body; ``scale`` multiplies every width, ``pools`` keeps only the first pools.
    Module indices match torchvision's ``make_layers`` so state dicts line up."""
    layers: list[nn.Module] = []
    kept = 0
    for v in config:
        if v == "M":
            kept += 1
            if pools is None or kept <= pools:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        width = round(int(v) * scale)
        conv = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> None:
    """torchvision's VGG initialisation: He (fan-out) for convolutions, N(0, 0.01) for linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class VGG(nn.Module):
    """VGG for 224x224 RGB ImageNet images (Simonyan & Zisserman, 2015): stacks of 3x3 convolutions,
    five 2x2 max-pools, then the paper's three fully connected layers (4096, 4096, classes) with
    dropout 0.5. Parameter names and shapes are torchvision's ``vgg*`` (its ImageNet weights load),
    including the adaptive 7x7 average pool that lets it take other input sizes. The ``_bn`` variants
    add batch normalisation after every convolution (Ioffe & Szegedy, 2015), which the paper predates.
    """

    def __init__(self, config: str, batch_norm: bool, in_channels: int = 3, num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = make_layers(CONFIGS[config], in_channels, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGGSmall(nn.Module):
    """VGG (Simonyan & Zisserman, 2015) for 28x28 grey or 32x32 RGB images.

    Kept from the paper: its configuration's sequence of 3x3 convolutions (8 for VGG-11, 13 for
    VGG-16) in five blocks whose width doubles after each pool, ReLU, 2x2 max-pooling, and three fully
    connected layers with dropout 0.5. Changed, and why:

    - Pooling: only the first three pools are kept. Five halvings would take 28x28 to nothing (and
      32x32 to 1x1); with three, blocks 4 and 5 work on 3x3 (28x28 input) or 4x4 (32x32) maps, and a
      global average pool (as the CIFAR VGGs do) makes the classifier independent of input size.
    - Widths: ``width`` is block 1's width (paper 64, default 20): 20-40-80-160-160, about 1.5M
      parameters for VGG-16, so its ONNX file is near 6 MB instead of 528 MB.
    - Classifier: 8 x ``width`` hidden units instead of 4096, on the pooled 8 x ``width`` features.
    - Initialisation: He et al.'s (2015) fan-in form for every convolution and hidden layer, which
      keeps the signal's scale through the 13 layers of the plain ``vgg16_small``, in place of the
      paper's warm start from a shallower trained net. Without batch norm it still starts slowly
      (near chance for the first ~100 steps at lr 0.05), so give it a warm-up or a lower peak rate.
    """

    def __init__(self, config: str, batch_norm: bool, in_channels: int = 1, num_classes: int = 10,
                 width: int = 20, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = make_layers(CONFIGS[config], in_channels, batch_norm, scale=width / 64, pools=SMALL_POOLS)
        top = round(512 * width / 64)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(top, top), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(top, top), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(top, num_classes),
        )
        init_weights(self)
        # He init in its fan-in form (the paper's, preserving the forward signal): torchvision's fan-out
        # form shrinks the signal wherever the width grows, 20x at a 1-channel input, and N(0, 0.01)
        # would start the narrow hidden layers near zero; without batch norm the net then sits at
        # chance for hundreds of steps.
        for m in self.modules():
            if isinstance(m, nn.Conv2d) or (isinstance(m, nn.Linear) and m is not self.classifier[-1]):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@architecture("vgg11")
def vgg11(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-11, configuration A (Simonyan & Zisserman, 2015); torchvision's ``vgg11``."""
    return VGG("A", False, in_channels, num_classes, **kwargs)


@architecture("vgg11_bn")
def vgg11_bn(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-11 with batch norm after every convolution; torchvision's ``vgg11_bn``."""
    return VGG("A", True, in_channels, num_classes, **kwargs)


@architecture("vgg16")
def vgg16(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-16, configuration D (Simonyan & Zisserman, 2015); torchvision's ``vgg16``."""
    return VGG("D", False, in_channels, num_classes, **kwargs)


@architecture("vgg16_bn")
def vgg16_bn(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-16 with batch norm after every convolution; torchvision's ``vgg16_bn``."""
    return VGG("D", True, in_channels, num_classes, **kwargs)


@architecture("vgg11_small")
def vgg11_small(in_channels: int = 1, num_classes: int = 10, width: int = 20, **kwargs) -> VGGSmall:
    """VGG-11 for 28x28 / 32x32 images; see ``VGGSmall`` for how it differs from the paper."""
    return VGGSmall("A", False, in_channels, num_classes, width, **kwargs)


@architecture("vgg11_bn_small")
def vgg11_bn_small(in_channels: int = 1, num_classes: int = 10, width: int = 20, **kwargs) -> VGGSmall:
    """VGG-11 with batch norm for 28x28 / 32x32 images; see ``VGGSmall``."""
    return VGGSmall("A", True, in_channels, num_classes, width, **kwargs)


@architecture("vgg16_small")
def vgg16_small(in_channels: int = 1, num_classes: int = 10, width: int = 20, **kwargs) -> VGGSmall:
    """VGG-16 for 28x28 / 32x32 images, without batch norm as in the paper; see ``VGGSmall``."""
    return VGGSmall("D", False, in_channels, num_classes, width, **kwargs)


@architecture("vgg16_bn_small")
def vgg16_bn_small(in_channels: int = 1, num_classes: int = 10, width: int = 20, **kwargs) -> VGGSmall:
    """VGG-16 with batch norm for 28x28 / 32x32 images; see ``VGGSmall``."""
    return VGGSmall("D", True, in_channels, num_classes, width, **kwargs)
