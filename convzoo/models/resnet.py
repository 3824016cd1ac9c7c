"""ResNet-18 (He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016)."""

from __future__ import annotations

import torch
from torch import nn

from convzoo.models import architecture


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity shortcut (Fig. 2 of the paper); where the
    block halves the resolution or changes width, a 1x1 stride-2 projection shortcut (option B)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with basic blocks (He et al., 2016, Table 1): a stem, four stages of ``blocks`` blocks,
    each stage after the first halving the resolution and doubling the width, global average pooling
    and one linear layer. ``width`` is the first stage's width (paper 64). ``small=True`` uses the
    CIFAR stem of the paper's section 4.2: one 3x3 stride-1 convolution and no max-pool.

    Names follow torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``) so its
    ImageNet weights load into the full-size model.
    """

    def __init__(self, blocks: tuple[int, int, int, int] = (2, 2, 2, 2), in_channels: int = 3,
                 num_classes: int = 1000, width: int = 64, small: bool = False,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if small:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        widths = [width * 2 ** i for i in range(4)]
        in_planes = width
        for index, (planes, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(in_planes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)

        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity (Goyal et al., 2017)
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@architecture("resnet18")
def resnet18(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-18 for 224x224 RGB ImageNet images (He et al., 2016, Table 1); torchvision's ``resnet18``."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, **kwargs)


@architecture("resnet18_small")
def resnet18_small(in_channels: int = 1, num_classes: int = 10, width: int = 24, **kwargs) -> ResNet:
    """ResNet-18 (He et al., 2016) for 28x28 grey or 32x32 RGB images.

    Kept from the paper: ResNet-18's eight basic blocks in four stages, batch norm, projection
    shortcuts where the shape changes, global average pooling and one linear layer. Changed, and why:

    - Stem: a 3x3 stride-1 convolution and no max-pool, as the paper's own CIFAR-10 networks
      (section 4.2). The ImageNet stem divides the input by 4 at once, leaving a 28x28 image 7x7
      before the first block; here the stages work on 28, 14, 7 and 4 pixel maps (32, 16, 8, 4).
    - Widths: ``width`` = 24 (paper 64), so the stages are 24-48-96-192 wide: about 1.6M parameters,
      an ONNX file near 6.3 MB, inside the 10 MB a Hugging Face Space serves without LFS
      (width 32 would be 2.8M parameters, 11.2 MB; width 28 is the widest that fits, about 8.6 MB).
    """
    return ResNet((2, 2, 2, 2), in_channels, num_classes, width=width, small=True, **kwargs)
