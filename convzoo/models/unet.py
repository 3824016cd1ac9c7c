"""U-Net (Ronneberger, Fischer & Brox, 2015), with configurable depth, width and padding."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from convzoo.models import architecture


def _double_conv(cin: int, cout: int, padding: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers.append(nn.Conv2d(c, cout, 3, padding=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


@architecture("unet")
class UNet(nn.Module):
    """U-Net (Ronneberger et al., "U-Net: convolutional networks for biomedical image segmentation", MICCAI 2015).

    A contracting path of ``depth`` poolings (two 3x3 convs + ReLU, then 2x2 max-pool, channels
    doubling from ``width``), an expanding path of 2x2 up-convolutions that halve the channels,
    concatenated with the cropped features of the same level, and a 1x1 conv to ``num_classes``.
    ``depth=4, width=64, padding="valid", batch_norm=False`` is the paper's network (572x572 in,
    388x388 out).

    Differences from the paper, each a choice rather than a default:
    - ``padding="same"`` (the default) pads the 3x3 convs so the output has the input's size
      (any multiple of ``2**depth``); ``"valid"`` is the paper's unpadded version, whose output is
      smaller and which needs the overlap-tile strategy (``convzoo.runtime.segment_tiled``).
    - ``batch_norm=True`` adds batch normalisation after each conv (not in the paper, which
      predates its wide use); it makes short training runs stable. It folds away at export.
    - ``width`` scales every level; the zoo's ``unet-membranes`` uses 16 to keep the ONNX file small.
    - The paper's dropout at the end of the contracting path is ``dropout`` (off by default).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, depth: int = 4, width: int = 64,
                 padding: Literal["same", "valid"] = "same", batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.depth, self.padding = depth, padding
        pad = 1 if padding == "same" else 0
        widths = [width * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(cin, w, pad, batch_norm))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = _double_conv(widths[-2], widths[-1], pad, batch_norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                for level in reversed(range(depth)))
        self.decode = nn.ModuleList(_double_conv(2 * widths[level], widths[level], pad, batch_norm)
                                    for level in reversed(range(depth)))
        self.head = nn.Conv2d(width, num_classes, 1)

    @property
    def size_multiple(self) -> int:
        """Same padding: input sides must be multiples of this."""
        return 2 ** self.depth

    def output_size(self, size: int) -> int:
        """The output side for an input side (the paper: 572 -> 388); raises if pooling would see an odd side."""
        if self.padding == "same":
            if size % self.size_multiple:
                raise ValueError(f"input side {size} is not a multiple of {self.size_multiple}")
            return size
        for level in range(self.depth):
            size -= 4
            if size <= 0 or size % 2:
                raise ValueError(f"input side is not valid for a valid-padding U-Net of depth {self.depth} "
                                 f"(level {level} sees an odd or empty side); `valid_input_size` finds one")
            size //= 2
        size -= 4
        for _ in range(self.depth):
            size = size * 2 - 4
        if size <= 0:
            raise ValueError("input too small for this U-Net")
        return size

    def valid_input_size(self, at_least: int) -> int:
        """The smallest valid-padding input side >= ``at_least`` (e.g. 572 for depth 4 near 570)."""
        side = max(at_least, 1)
        while True:
            try:
                self.output_size(side)
                return side
            except ValueError:
                side += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottom(x))
        for up, decode, skip in zip(self.up, self.decode, reversed(skips)):
            x = up(x)
            if self.padding == "valid":  # the paper crops the skip features to the smaller decoder map
                skip = _center_crop(skip, x.shape[-2], x.shape[-1])
            x = decode(torch.cat([skip, x], dim=1))
        return self.head(x)
