"""TransformerNet for fast style transfer (Johnson, Alahi & Fei-Fei, 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.models import architecture


class ConvLayer(nn.Sequential):
    """Reflection padding + conv (+ instance norm + ReLU): no zero border for the style to paint around."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: bool = True, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3), ConvLayer(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest upsampling to a given size, then a conv: no checkerboard artefacts (Odena et al., 2016)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, cout, kernel)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


@architecture("transformer_net")
class TransformerNet(nn.Module):
    """TransformerNet (Johnson et al., "Perceptual losses for real-time style transfer and super-resolution", 2016).

    9x9 conv, two stride-2 3x3 convs, ``blocks`` residual blocks, two upsampling stages and a 9x9
    conv back to RGB; fully convolutional, so any input of at least 16x16 pixels works and the
    output has the input's size (odd sizes included: each upsampling returns to the size its
    encoder level had). Input and output are RGB pixels in 0..255 (NCHW float).

    Differences from the paper:
    - instance normalisation instead of batch normalisation (Ulyanov et al., 2016), as in every
      later fast-style implementation: it removes the content image's contrast from the style;
    - nearest upsampling + conv instead of fractionally strided convs (Odena et al., "Deconvolution
      and checkerboard artifacts", Distill 2016);
    - reflection padding everywhere instead of the paper's zero padding, and no 40-pixel reflect
      border around the input (the paper's trick to keep the size with unpadded residual blocks);
    - ``widths`` defaults to the paper's (32, 64, 128); the zoo's ``style-*`` entries use
      (24, 48, 96), which stylises a 512x512 photo in about 0.4 s with onnxruntime on 2 CPU cores
      (the paper's widths: about 1 s);
    - the output is ``127.5 * (tanh(y) + 1)``, the paper's scaled tanh mapped onto 0..255.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), blocks: int = 5) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.conv1 = ConvLayer(3, w1, 9)
        self.conv2 = ConvLayer(w1, w2, 3, stride=2)
        self.conv3 = ConvLayer(w2, w3, 3, stride=2)
        self.residual = nn.Sequential(*(ResidualBlock(w3) for _ in range(blocks)))
        self.up1 = UpsampleConv(w3, w2)
        self.up2 = UpsampleConv(w2, w1)
        self.out = ConvLayer(w1, 3, 9, norm=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1 / 127.5) - 1  # the net sees -1..1; users and ONNX callers send raw pixels
        x1 = self.conv1(x)
        x2 = self.conv2(x1)
        y = self.residual(self.conv3(x2))
        y = self.up1(y, x2.shape[-2:])
        y = self.up2(y, x1.shape[-2:])
        return 127.5 * (torch.tanh(self.out(y)) + 1)
