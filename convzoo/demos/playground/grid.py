"""The grids a person types on the by-hand view: read, resized without losing cells, and the filter presets.

Stdlib and numpy only: no gradio, so the arithmetic and its tests need no page.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from math import comb
from typing import Any

import numpy as np

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.errors import BadInputError, ConvzooError
from convzoo.sizes import Size

MAX_SIDE = sizes.IMAGE_SIDE  # every limit of the views, with its reason: convzoo.sizes (issue 22)
MAX_KERNEL = sizes.FILTER_SIDE

# ----------------------------------------------------------------------------------------------
# presets: a function of the filter size where the filter has a natural k x k form, else fixed 3x3

FIXED_3X3 = {
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x (vertical edges)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y (horizontal edges)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def _line(k: int) -> list[list[Fraction]]:
    """Every row ``[-1/2 1 -1/2]`` at k=3: the centre column against the others, summing to zero."""
    side = Fraction(-1, k - 1) if k > 1 else Fraction(0)
    return [[Fraction(1) if j == k // 2 else side for j in range(k)] for _ in range(k)]


def _binomial(k: int) -> list[list[Fraction]]:
    row = [comb(k - 1, i) for i in range(k)]
    return [[Fraction(a * b, 4 ** (k - 1)) for b in row] for a in row]


SIZED: dict[str, Callable[[int], list[list[Fraction]]]] = {
    "vertical line (lecture A)": _line,
    "horizontal line (lecture B)": lambda k: [list(col) for col in zip(*_line(k))],
    "identity": lambda k: [[Fraction(int(i == j == k // 2)) for j in range(k)] for i in range(k)],
    "box blur": lambda k: [[Fraction(1, k * k)] * k for _ in range(k)],
    "Gaussian blur": _binomial,
}
PRESETS = [*SIZED, *FIXED_3X3]
DEFAULT_PRESETS = ("vertical line (lecture A)", "horizontal line (lecture B)", "Sobel x (vertical edges)",
                   "Laplacian")


def preset(name: str, k: int = 3) -> list[list[str]]:
    """The preset as a k x k grid of strings (fixed 3x3 presets are centred in a larger grid)."""
    k = sizes.FILTER_SIZE.parse(k)
    if name in SIZED:
        return cv.format_matrix(SIZED[name](k))
    if name not in FIXED_3X3:
        raise ConvzooError(f"no preset named {sizes.shown(name)}; choose one of: {', '.join(PRESETS)}")
    if k < 3:
        raise ConvzooError(f"{name} is a 3x3 filter; set the filter size to 3 or more first")
    grid = [["0"] * k for _ in range(k)]
    top = (k - 3) // 2
    for i, row in enumerate(FIXED_3X3[name]):
        for j, v in enumerate(row):
            grid[top + i][top + j] = str(v)
    return grid


def resized(rows: Any, height: Any, width: Any, what: str = "image") -> list[list[str]]:
    """Keep what fits, fill new cells with 0."""
    side = MAX_SIDE if what == "image" else MAX_KERNEL
    height = Size(f"{what} rows", 1, side).parse(height)
    width = Size(f"{what} columns", 1, side).parse(width)
    return cut(as_grid(rows, what, side), height, width)


def cut(rows: list[list[Any]], height: int, width: int) -> list[list[str]]:
    """The top-left ``height`` x ``width`` of a grid, new cells 0."""
    return [[(str(rows[i][j]) if i < len(rows) and j < len(rows[i]) else "0") for j in range(width)]
            for i in range(height)]


def remember(kept: Any, shown: Any, side: int, what: str = "image") -> list[list[str]]:
    """The grid a view keeps behind the one it shows: ``side`` x ``side`` cells, the shown ones written over
    the kept ones. Shrinking the shown grid hides cells without losing them, so growing it back restores
    them (issue 22: typing 12 into Image rows passes through 1)."""
    full = cut(as_grid(kept, what, side) if kept else [], side, side)
    for i, row in enumerate(as_grid(shown, what, side)):
        for j, value in enumerate(row):
            full[i][j] = str(value)
    return full


def as_grid(value: Any, what: str = "grid", side: int | None = None) -> list[list[Any]]:
    """A Dataframe value (list of rows, or ``{"data": ...}`` from the API or a component update), refused in a
    sentence when it is not a grid or has more than ``side`` rows or columns (counted before a cell is read)."""
    if isinstance(value, dict):
        value = value.get("data", [])
    if hasattr(value, "values") and hasattr(value, "columns"):  # a pandas DataFrame
        value = value.values.tolist()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in value):
        raise BadInputError(f"the {what} must be a grid: a list of rows, each a list of numbers")
    if side is not None and (len(value) > side or any(len(row) > side for row in value)):
        widest = max((len(row) for row in value), default=0)
        raise BadInputError(f"the {what} is {len(value)}x{widest}; by hand, keep it to at most {side}x{side}")
    return [list(row) for row in value]


def grid_value(rows: list[list[Any]]) -> dict[str, Any]:
    """A Dataframe value with a numbered header per column (the header follows the width)."""
    width = len(rows[0]) if rows else 0
    return {"headers": [str(j + 1) for j in range(width)], "data": [[str(v) for v in row] for row in rows]}

