"""One convolution layer as the views take it: the filters, their biases and the settings, read once from the
page's values, computed exactly by ``convzoo.convolution`` (the by-hand view) or in floats on a photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.demos.playground.grid import MAX_KERNEL, MAX_SIDE, as_grid
from convzoo.errors import ConvzooError

LETTERS = "ABCD"
MAX_FILTERS = sizes.FILTERS.high
POOLING = ("max", "average", "none")


@dataclass(frozen=True)
class Settings:
    stride: int
    padding: int
    dilation: int
    relu: bool
    pool: str
    pool_size: int
    pool_stride: int

    @classmethod
    def parse(cls, stride, padding, dilation, relu, pool, pool_size, pool_stride) -> Settings:
        """Each size within the page's limits (``sizes``), checked before any work."""
        if pool not in POOLING:
            raise ConvzooError(f"pooling is one of {', '.join(POOLING)}, got {sizes.shown(pool)}")
        return cls(sizes.STRIDE.parse(stride), sizes.PADDING.parse(padding), sizes.DILATION.parse(dilation),
                   bool(relu), pool, sizes.POOL_SIZE.parse(pool_size), sizes.POOL_STRIDE.parse(pool_stride))


@dataclass(frozen=True)
class Result:
    image: np.ndarray  # (1, H, W) exact
    weights: np.ndarray  # (F, 1, kh, kw) exact
    bias: np.ndarray  # (F,) exact
    output: np.ndarray  # (F, H', W')
    activated: np.ndarray | None  # after ReLU
    pooled: np.ndarray | None
    settings: Settings
    pool_error: str = ""  # pooling that does not fit the output: said beside the outputs, which stay (issue 23)

    @property
    def pooled_from(self) -> np.ndarray:
        """The maps pooling reads: after ReLU when there is one."""
        return self.activated if self.activated is not None else self.output


def parse_filters(filters: list[Any], biases: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    parsed = [cv.parse_matrix(as_grid(f, f"filter {LETTERS[i]}", MAX_KERNEL), f"filter {LETTERS[i]}")
              for i, f in enumerate(filters)]
    shapes = {p.shape for p in parsed}
    if len(shapes) > 1:
        sizes = ", ".join(f"{LETTERS[i]} {p.shape[0]}x{p.shape[1]}" for i, p in enumerate(parsed))
        raise ConvzooError(f"the filters of one layer share one size, but these differ ({sizes}); "
                           "set the filter size again to make them equal")
    bias = cv.exact([cv.parse_number(b if b not in (None, "") else 0, f"bias of filter {LETTERS[i]}")
                     for i, b in enumerate(biases)])
    return np.stack(parsed)[:, None], bias


def compute(image: Any, filters: list[Any], biases: list[Any], settings: Settings) -> Result:
    x = cv.parse_matrix(as_grid(image, "image", MAX_SIDE), "image")  # sized before a cell is parsed
    weights, bias = parse_filters(filters, biases)
    s = settings
    out = cv.conv2d(x, weights, bias, stride=s.stride, padding=s.padding, dilation=s.dilation)
    activated = cv.relu(out) if s.relu else None
    pooled, pool_error = None, ""
    if s.pool != "none":
        try:
            pooled = cv.pool2d(activated if activated is not None else out, s.pool, s.pool_size, s.pool_stride)
        except ConvzooError as e:
            pool_error = str(e)
    return Result(x[None], weights, bias, out, activated, pooled, s, pool_error)


SETTINGS = ("stride", "padding", "dilation", "relu", "pooling", "pooling size", "pooling stride")


@dataclass(frozen=True)
class Layer:
    """One layer as the views take it: the filters in use, their biases, the settings.

    The UI holds it as a flat list of values (``layer_values`` order): the number of filters, all
    ``MAX_FILTERS`` grids, all their biases, then ``SETTINGS``; Gradio passes components positionally,
    and this is the one place that knows the order.
    """

    filters: tuple[Any, ...]
    biases: tuple[Any, ...]
    settings: Settings

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> Layer:
        expected = 1 + 2 * MAX_FILTERS + len(SETTINGS)
        if len(values) != expected:
            raise ConvzooError(f"a layer is described by {expected} values, got {len(values)}")
        count = sizes.FILTERS.parse(values[0])
        grids, biases = values[1:1 + MAX_FILTERS], values[1 + MAX_FILTERS:1 + 2 * MAX_FILTERS]
        return cls(tuple(grids[:count]), tuple(biases[:count]), Settings.parse(*values[1 + 2 * MAX_FILTERS:]))

    def compute(self, image: Any) -> Result:
        return compute(image, list(self.filters), list(self.biases), self.settings)

