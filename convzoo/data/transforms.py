"""Batched augmentations, as the lecture teaches them, vectorised over the batch on its device.

``Recipe.augment`` names them: ``"crop"`` (random crop with zero padding), ``"flip"`` (horizontal
flip), ``"erase"`` (random erasing, Zhong et al. 2017). Each draws one set of random numbers for the
whole batch from a ``torch.Generator`` on the batch's device -- no per-image loop in Python, no host
round trip -- so a seeded generator gives the same batch twice.

Crop and flip act on the uint8 pixels, before normalisation, so the padding is black (0), the
background of (Fashion-)MNIST and what torchvision's ``RandomCrop(padding=...)`` on a PIL image gives.
Erasing acts on the normalised tensor and fills with standard-normal noise: the paper's "random
values" (its best variant) in the units the network sees.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.types import ClassifierOptions, Preprocess, training_options

PIXEL_OPS = ("crop", "flip")  # on uint8 pixels, before normalisation
NORMALISED_OPS = ("erase",)  # on the normalised tensor
KNOWN = PIXEL_OPS + NORMALISED_OPS


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut each image's own random window of the original size."""
    if padding <= 0:
        return x
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(height, device=x.device)  # batch x H
    cols = dx[:, None] + torch.arange(width, device=x.device)  # batch x W
    # one gather for the whole batch; advanced indices around the channel slice put it last
    out = padded[torch.arange(batch, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (labels of clothes and CIFAR objects survive it)."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float = 0.5,
                 area: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability ``p``, a rectangle of 2-40% of the image with
    aspect ratio 0.3-3.3 becomes noise. The paper redraws a rectangle that does not fit; clamping it to
    the image does the same job in one vectorised pass."""
    batch, _, height, width = x.shape
    device = x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator, device=device)

    target = uniform(*area) * (height * width)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    h = torch.sqrt(target * aspect).round().clamp(1, height)
    w = torch.sqrt(target / aspect).round().clamp(1, width)
    top = (uniform(0, 1) * (height - h + 1)).floor()
    left = (uniform(0, 1) * (width - w + 1)).floor()
    chosen = torch.rand(batch, generator=generator, device=device) < p
    rows = torch.arange(height, device=device)[None, :]
    cols = torch.arange(width, device=device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # batch x H
    inside_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # batch x W
    mask = (inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None])[:, None]
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return torch.where(mask, noise, x)


@functools.lru_cache(maxsize=32)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # made once per device: a fresh host-to-GPU copy in every step would stall the training loop
    shape = (1, -1, 1, 1)
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape))


def normalize(pixels: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """``(pixel * scale - mean) / std`` per channel, in float32: what ``runtime.normalize`` does at inference."""
    mean, std = _channel_stats(tuple(preprocess.mean), tuple(preprocess.std), pixels.device)
    return (pixels.float() * preprocess.scale - mean) / std


def check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        raise ConvzooError(f"unknown augmentation {', '.join(map(repr, unknown))}; classification recipes can use "
                           f"{', '.join(KNOWN)}")


class Augment:
    """A recipe's augmentations plus normalisation: uint8 pixel batch in, normalised float batch out.

    Pixel operations run first in the recipe's order, then normalisation, then erasing. ``options``
    (the recipe's) may set ``crop_padding``, ``flip_p``, ``erase_p``.
    """

    def __init__(self, names: Sequence[str], preprocess: Preprocess,
                 options: Mapping[str, Any] | ClassifierOptions | None = None) -> None:
        check_names(names)
        typed = options if isinstance(options, ClassifierOptions) else training_options("classification", options or {})
        self.names = tuple(names)
        self.preprocess = preprocess
        self.padding = typed.padding((preprocess.size or (32, 32))[0])
        self.flip_p = typed.flip_p
        self.erase_p = typed.erase_p

    def __call__(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for name in self.names:
            if name == "crop":
                pixels = random_crop(pixels, generator, self.padding)
            elif name == "flip":
                pixels = random_flip(pixels, generator, self.flip_p)
        x = normalize(pixels, self.preprocess)
        if "erase" in self.names:
            x = random_erase(x, generator, self.erase_p)
        return x
