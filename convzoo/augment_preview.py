"""The training augmentations of ``convzoo.data.transforms`` in numpy, so that the app can show them without torch.

Given the same random numbers -- crop offsets, flip decisions, erase rectangles and noise -- ``augment`` gives
exactly the pixels (and normalised values) of ``transforms.Augment``; ``tests/test_augment_preview.py`` checks it
against the torch code. ``draw`` picks those numbers with a numpy ``Generator`` from the same distributions,
by the same formulas, but not from the same stream: a preview shows views training could have made, never
the ones a particular run did make.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convzoo import registry
from convzoo.errors import ConvzooError
from convzoo.runtime import normalize_batch
from convzoo.types import ModelEntry, Preprocess, training_options

PIXEL_OPS = ("crop", "flip")  # on uint8 pixels, before normalisation (as in training)
NORMALISED_OPS = ("erase",)  # on the normalised tensor
KNOWN = PIXEL_OPS + NORMALISED_OPS
ERASE_AREA = (0.02, 0.4)  # fraction of the image (Zhong et al. 2017); transforms.random_erase's defaults
ERASE_RATIO = (0.3, 1 / 0.3)  # height / width of the rectangle, drawn log-uniform


@dataclass(frozen=True)
class Plan:
    """A recipe's augmentations and the settings ``transforms.Augment`` reads from it."""

    names: tuple[str, ...]
    preprocess: Preprocess
    padding: int
    flip_p: float
    erase_p: float

    @classmethod
    def of(cls, names: Sequence[str], preprocess: Preprocess, options: Mapping[str, Any] | None = None) -> Plan:
        unknown = [name for name in names if name not in KNOWN]
        if unknown:
            raise ConvzooError(f"unknown augmentation {', '.join(map(repr, unknown))}; classification recipes can "
                               f"use {', '.join(KNOWN)}")
        typed = training_options("classification", options or {})
        return cls(names=tuple(names), preprocess=preprocess, padding=typed.padding((preprocess.size or (32, 32))[0]),
                   flip_p=typed.flip_p, erase_p=typed.erase_p)


def plan_for(entry: ModelEntry) -> Plan:
    return Plan.of(entry.recipe.augment, entry.preprocess, entry.recipe.options)


def plan_of(name: str) -> Plan:
    """The plan of a registry model, e.g. ``plan_of("lenet5-fashion")``."""
    return plan_for(registry.get(name))


def describe(plan: Plan) -> str:
    """The recipe's augmentations in words: ``crop with 2 px zero padding, horizontal flip p=0.5``."""
    words = []
    for name in plan.names:
        if name == "crop" and plan.padding > 0:
            words.append(f"crop with {plan.padding} px zero padding")
        elif name == "flip":
            words.append(f"horizontal flip p={plan.flip_p:g}")
        elif name == "erase":
            words.append(f"random erasing p={plan.erase_p:g} ({ERASE_AREA[0]:.0%}-{ERASE_AREA[1]:.0%} of the image, "
                         f"aspect {ERASE_RATIO[0]:.1f}-{ERASE_RATIO[1]:.1f}, noise)")
    return ", ".join(words) or "no augmentation"


# ----------------------------------------------------------------------------------------------
# the random numbers of one batch


@dataclass(frozen=True)
class Draw:
    """Everything random about one augmented batch of N images; per image unless said otherwise."""

    dy: np.ndarray  # crop window's top in the padded image, 0..2*padding
    dx: np.ndarray  # and its left
    flip: np.ndarray  # bool: mirrored left-right
    erase: np.ndarray  # bool: a rectangle is erased
    top: np.ndarray  # the rectangle, in pixels (meaningful where ``erase``)
    left: np.ndarray
    height: np.ndarray
    width: np.ndarray
    noise: np.ndarray  # NxCxHxW standard-normal float32; only the rectangle's part is used


def erase_boxes(u_area: np.ndarray, u_aspect: np.ndarray, u_top: np.ndarray, u_left: np.ndarray,
                height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rectangles ``(top, left, h, w)`` from four uniform [0, 1) numbers per image, by the formula and in the
    float32 arithmetic of ``transforms.random_erase``: area 2-40%, log-uniform aspect, clamped to the image."""
    def uniform(u: np.ndarray, low: float, high: float) -> np.ndarray:
        return low + (high - low) * np.asarray(u, np.float32)

    target = uniform(u_area, *ERASE_AREA) * (height * width)
    aspect = np.exp(uniform(u_aspect, math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])))
    h = np.clip(np.round(np.sqrt(target * aspect)), 1, height)
    w = np.clip(np.round(np.sqrt(target / aspect)), 1, width)
    top = np.floor(uniform(u_top, 0, 1) * (height - h + 1))
    left = np.floor(uniform(u_left, 0, 1) * (width - w + 1))
    return top.astype(np.int64), left.astype(np.int64), h.astype(np.int64), w.astype(np.int64)


def draw(plan: Plan, shape: tuple[int, int, int, int], rng: np.random.Generator) -> Draw:
    """Random numbers for a batch of ``shape`` (N, C, H, W), from the distributions the torch code draws from."""
    batch, _, height, width = shape
    offsets = 2 * plan.padding + 1 if "crop" in plan.names and plan.padding > 0 else 1
    dy, dx = rng.integers(0, offsets, batch), rng.integers(0, offsets, batch)
    flip = rng.random(batch) < plan.flip_p if "flip" in plan.names else np.zeros(batch, bool)
    u_area, u_aspect, u_top, u_left = (rng.random(batch, dtype=np.float32) for _ in range(4))
    top, left, h, w = erase_boxes(u_area, u_aspect, u_top, u_left, height, width)
    erase = rng.random(batch) < plan.erase_p if "erase" in plan.names else np.zeros(batch, bool)
    noise = rng.standard_normal(shape, dtype=np.float32)
    return Draw(dy=dy, dx=dx, flip=flip, erase=erase, top=top, left=left, height=h, width=w, noise=noise)


# ----------------------------------------------------------------------------------------------
# the augmentations, NxCxHxW as in training


def crop(pixels: np.ndarray, dy: np.ndarray, dx: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad by ``padding`` and cut each image's window at ``(dy[i], dx[i])`` of the original size."""
    if padding <= 0:
        return pixels
    _, _, height, width = pixels.shape
    padded = np.pad(pixels, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return np.stack([padded[i, :, y:y + height, x:x + width] for i, (y, x) in enumerate(zip(dy, dx))])


def flip(pixels: np.ndarray, flips: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(flips)[:, None, None, None], pixels[..., ::-1], pixels)


def erase(x: np.ndarray, d: Draw) -> np.ndarray:
    """Each chosen image's rectangle becomes ``d.noise``; ``x`` is the normalised float batch."""
    _, _, height, width = x.shape
    rows = np.arange(height)[None, :]
    cols = np.arange(width)[None, :]
    inside_rows = (rows >= d.top[:, None]) & (rows < (d.top + d.height)[:, None])
    inside_cols = (cols >= d.left[:, None]) & (cols < (d.left + d.width)[:, None])
    mask = inside_rows[:, :, None] & inside_cols[:, None, :] & np.asarray(d.erase)[:, None, None]
    return np.where(mask[:, None], d.noise.astype(x.dtype), x)


def normalize(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """NxCxHxW uint8 -> NxCxHxW float32 by ``runtime.normalize_batch``, the arithmetic training also does."""
    return normalize_batch(pixels.transpose(0, 2, 3, 1), preprocess)


def augment(plan: Plan, pixels: np.ndarray, d: Draw) -> np.ndarray:
    """``transforms.Augment``: pixel operations in the recipe's order, normalisation, then erasing."""
    for name in plan.names:
        if name == "crop":
            pixels = crop(pixels, d.dy, d.dx, plan.padding)
        elif name == "flip":
            pixels = flip(pixels, d.flip)
    x = normalize(pixels, plan.preprocess)
    return erase(x, d) if "erase" in plan.names else x


def to_pixels(x: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """NxCxHxW normalised -> NxHxWxC uint8 for display.

    Erasing happens after normalisation in training, so an augmented batch only exists as normalised
    numbers; undoing the normalisation draws it as pixels, the noise clipped to 0..255 where it leaves them.
    """
    mean = np.asarray(preprocess.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(preprocess.std, np.float32).reshape(1, -1, 1, 1)
    pixels = (x * std + mean) / preprocess.scale
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def views(plan: Plan, image: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, Draw]:
    """``count`` augmented views of one image (HxW or HxWxC uint8) as training makes them, as NxHxWxC pixels."""
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    batch = np.repeat(chw[None], count, axis=0)
    d = draw(plan, batch.shape, rng)
    return to_pixels(augment(plan, batch, d), plan.preprocess), d
