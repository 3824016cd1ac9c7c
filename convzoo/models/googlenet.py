"""GoogLeNet, Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015)."""

from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.models import architecture

# In training with auxiliary heads the model returns all three, as torchvision's GoogLeNet does.
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, for each Inception module.
INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
# torchvision's normalisation of ImageNet inputs vs. the (x - 0.5) / 0.5 that its GoogLeNet weights,
# ported from the original, expect: ``transform_input`` converts one into the other.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class BasicConv2d(nn.Module):
    """Convolution, batch norm (eps 1e-3), ReLU: torchvision's unit, from the BN-Inception weights."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1 then 3x3; 1x1 then "5x5"; 3x3 max-pool then 1x1."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, kernel5: int = 5) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=kernel5, padding=kernel5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """The auxiliary classifier on 4a and 4d: 4x4 average pool, 1x1 conv (128), FC 1024, dropout 0.7."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(nn.Module):
    """GoogLeNet (Szegedy et al., 2015): a stem, nine Inception modules (3a-5b) with max-pools between
    the stages, global average pooling, dropout and one linear layer; auxiliary classifiers on 4a and
    4d are optional (``aux_logits``). In training with them, ``forward`` returns ``GoogLeNetOutputs``
    (logits, aux_logits2, aux_logits1), as torchvision's does; otherwise, and always in eval, the logits.

    With the defaults this is torchvision's ``googlenet`` (same parameter names and shapes, so its
    ImageNet weights load), which differs from the paper as those weights do: batch norm after every
    convolution, and a 3x3 convolution where the paper has 5x5 (pytorch/vision#906). Set
    ``transform_input=True`` with those weights (torchvision does when it loads them): they expect
    inputs normalised as (x - 0.5) / 0.5, and the flag converts ImageNet-normalised inputs.

    ``small=True`` adapts the stem to 28x28 / 32x32 images (see ``googlenet_small``); ``width`` is the
    first convolution's width (paper 64) and scales every other width with it.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, aux_logits: bool = False,
                 transform_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7,
                 width: int = 64, small: bool = False, kernel5: int | None = None) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError("transform_input converts ImageNet-normalised RGB inputs; it needs in_channels=3")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        kernel5 = kernel5 or (5 if small else 3)

        def w(channels: int) -> int:
            return max(1, round(channels * width / 64))

        if small:  # 28 -> 28 (stem) -> 14 (3a, 3b) -> 7 (4a-4e) -> 4 (5a, 5b)
            self.conv1 = BasicConv2d(in_channels, w(64), kernel_size=3, padding=1)
            self.maxpool1 = nn.Identity()
            self.maxpool2 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=False)
        else:      # 224 -> 112 -> 56 (stem) -> 28 (3a, 3b) -> 14 (4a-4e) -> 7 (5a, 5b)
            self.conv1 = BasicConv2d(in_channels, w(64), kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(w(64), w(64), kernel_size=1)
        self.conv3 = BasicConv2d(w(64), w(192), kernel_size=3, padding=1)

        channels = w(192)
        blocks = {}
        for name, widths in INCEPTIONS.items():
            scaled = [w(c) for c in widths]
            blocks[name] = Inception(channels, *scaled, kernel5=kernel5)
            channels = scaled[0] + scaled[2] + scaled[4] + scaled[5]
            if name == "4a":
                aux1_in = channels
            elif name == "4d":
                aux2_in = channels
        self.inception3a, self.inception3b = blocks["3a"], blocks["3b"]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a, self.inception4b, self.inception4c = blocks["4a"], blocks["4b"], blocks["4c"]
        self.inception4d, self.inception4e = blocks["4d"], blocks["4e"]
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a, self.inception5b = blocks["5a"], blocks["5b"]

        self.aux1 = InceptionAux(aux1_in, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(aux2_in, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)

        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        return torch.cat([x[:, c:c + 1] * (IMAGENET_STD[c] / 0.5) + (IMAGENET_MEAN[c] - 0.5) / 0.5
                          for c in range(3)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        x = self.maxpool1(self.conv1(self._transform_input(x)))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if aux1 is not None:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


@architecture("googlenet")
def googlenet(in_channels: int = 3, num_classes: int = 1000, aux_logits: bool = False,
              transform_input: bool = False, **kwargs) -> GoogLeNet:
    """GoogLeNet for 224x224 RGB ImageNet images; torchvision's ``googlenet`` (see ``GoogLeNet``)."""
    return GoogLeNet(in_channels, num_classes, aux_logits=aux_logits, transform_input=transform_input, **kwargs)


@architecture("googlenet_small")
def googlenet_small(in_channels: int = 1, num_classes: int = 10, width: int = 32, aux_logits: bool = False,
                    **kwargs) -> GoogLeNet:
    """GoogLeNet (Szegedy et al., 2015) for 28x28 grey or 32x32 RGB images.

    Kept from the paper: the stem's 1x1 and 3x3 convolutions (conv2, conv3), all nine Inception
    modules with Table 1's widths in proportion, the 3x3 max-pools between stages, global average
    pooling, dropout, one linear layer, and the optional auxiliary heads. Changed, and why:

    - Stem: a 3x3 stride-1 convolution replaces the 7x7 stride-2 one, and the first max-pool is
      dropped. The paper's stem divides the input by 8 before the first Inception module (28x28 ->
      4x4); this one by 2, so the modules work on 14x14 (3a, 3b), 7x7 (4a-4e) and 4x4 (5a, 5b)
      maps from a 28x28 image (16, 8, 4 from 32x32), the paper's 28-14-7 shape at small scale.
    - Widths: ``width`` (default 32, paper 64) scales every layer, so 3a has 32 1x1 filters instead of 64;
      about 1.6M parameters, an ONNX file near 6.5 MB.
    - Branch 3 uses the paper's 5x5 convolution, not torchvision's 3x3; batch norm follows every
      convolution (torchvision's unit; the paper has none), which is what lets it train in 30 epochs.
    """
    return GoogLeNet(in_channels, num_classes, aux_logits=aux_logits, width=width, small=True, **kwargs)
