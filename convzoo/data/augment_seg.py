"""Segmentation augmentation, applied jointly to image and label, vectorised on the training device.

The U-Net paper trains on 30 sections with "excessive data augmentation": shifts, rotations,
elastic deformations from random displacements on a coarse 3x3 grid (10 px standard deviation,
bicubic interpolation) and grey-value variations. Here every geometric change -- the random tile,
flip, rotation and elastic field -- is one sampling grid per tile, and one ``grid_sample`` call
reads the whole batch: bilinear for the image, nearest for the label, so the two stay aligned
pixel for pixel. Borders are mirrored, as the paper extrapolates missing context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError

OPS = ("elastic", "flip", "rotate", "brightness")


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ConvzooError(f"unknown segmentation augmentation {', '.join(unknown)}; choose from {', '.join(OPS)}")
    return tuple(ops)


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device) * (high - low) + low


def sampling_grid(batch: int, tile: int, height: int, width: int, ops: Sequence[str], generator: torch.Generator,
                  device, elastic_sigma: float = 10.0, elastic_points: int = 3) -> torch.Tensor:
    """B x tile x tile x 2 source coordinates in ``grid_sample``'s -1..1 (align_corners=True) convention."""
    ops = check_ops(ops)
    axis = torch.arange(tile, device=device, dtype=torch.float32) - (tile - 1) / 2
    v, u = torch.meshgrid(axis, axis, indexing="ij")  # rows, columns around the tile's centre
    coords = torch.stack([u, v], dim=-1).expand(batch, tile, tile, 2)  # (x, y)
    if "flip" in ops:
        sign = torch.where(torch.rand(batch, generator=generator, device=device) < 0.5, -1.0, 1.0)
        coords = coords * torch.stack([sign, torch.ones_like(sign)], dim=-1)[:, None, None, :]
    if "rotate" in ops:
        angle = _uniform((batch,), 0.0, 2 * math.pi, generator, device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # B x 2 x 2
        coords = torch.einsum("bij,bhwj->bhwi", rotation, coords)
    if "elastic" in ops:
        coarse = torch.randn((batch, 2, elastic_points, elastic_points), generator=generator, device=device)
        field = F.interpolate(coarse * elastic_sigma, size=(tile, tile), mode="bicubic", align_corners=True)
        coords = coords + field.permute(0, 2, 3, 1)
    # tile centres where a whole unrotated tile fits; rotated corners and elastic pushes are mirrored back
    low_x, high_x = min((tile - 1) / 2, (width - 1) / 2), max(width - 1 - (tile - 1) / 2, (width - 1) / 2)
    low_y, high_y = min((tile - 1) / 2, (height - 1) / 2), max(height - 1 - (tile - 1) / 2, (height - 1) / 2)
    centre = torch.stack([_uniform((batch,), low_x, high_x, generator, device),
                          _uniform((batch,), low_y, high_y, generator, device)], dim=-1)
    coords = coords + centre[:, None, None, :]
    # Python scalars, not a new device tensor: a host-to-device copy each step would stall the GPU queue
    return torch.stack([coords[..., 0] * (2 / max(width - 1, 1)), coords[..., 1] * (2 / max(height - 1, 1))], -1) - 1


def sample_tiles(images: torch.Tensor, labels: torch.Tensor, batch: int, tile: int, ops: Sequence[str],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmented tiles from whole sections.

    ``images``: N x 1 x H x W float in 0..1; ``labels``: N x H x W class indices (any integer dtype).
    Returns B x 1 x tile x tile images and B x tile x tile int64 labels, on the sections' device.
    """
    device = images.device
    n, _, height, width = images.shape
    index = torch.randint(0, n, (batch,), generator=generator, device=device)
    grid = sampling_grid(batch, tile, height, width, ops, generator, device)
    x = F.grid_sample(images[index], grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    y = F.grid_sample(labels[index, None].float(), grid, mode="nearest", padding_mode="reflection", align_corners=True)
    if "brightness" in ops:  # grey-value variations: contrast about mid-grey, then a shift
        contrast = _uniform((batch, 1, 1, 1), 0.8, 1.25, generator, device)
        shift = _uniform((batch, 1, 1, 1), -0.1, 0.1, generator, device)
        x = ((x - 0.5) * contrast + 0.5 + shift).clamp(0, 1)
    return x, y[:, 0].round().long()
