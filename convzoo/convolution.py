"""Convolution, pooling and ReLU the way the lecture does them by hand, in numpy (no torch).

"Convolution" here is what deep-learning frameworks call it: cross-correlation, the filter slid over
the zero-padded input without flipping (``torch.nn.functional.conv1d/conv2d/conv3d``). One engine,
``convolve``, serves every shape the playground shows: 1-D signals, 2-D images, 3-D volumes of frames
(``axes``). The same code runs on float arrays (photos) and on object arrays of ``fractions.Fraction``
(the small grids typed by hand), so ``7/2`` stays ``7/2``; ``expand`` writes any output out as the sum
that made it. Shapes follow torch without the batch axis: inputs ``(C, *n)``, filters ``(F, C, *k)``,
outputs ``(F, *n')``; in 2-D ``(C, H, W)``, ``(F, C, kh, kw)``, ``(F, H', W')``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convzoo import bounds
from convzoo.sizes import VALUE as MAX_VALUE  # the page's limits, in one place
from convzoo.errors import BadInputError

Pair = int | tuple[int, int]
PerAxis = int | Sequence[int]  # one value for every spatial axis, or one per axis
MAX_DENOMINATOR_SHOWN = 10_000  # beyond this a fraction stops helping a reader; show a decimal instead


def _per_axis(value: PerAxis, axes: int, name: str, minimum: int) -> tuple[int, ...]:
    values = (value,) * axes if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != axes or not all(isinstance(v, (int, np.integer)) for v in values):
        raise BadInputError(f"{name} must be a whole number (or {axes}, one per axis), got {value!r}")
    if min(values) < minimum:
        raise BadInputError(f"{name} must be at least {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


# ----------------------------------------------------------------------------------------------
# numbers: exact where the inputs allow it


def parse_number(text: Any, where: str = "value") -> Fraction:
    """``"-1/2"``, ``"0.5"``, ``"3"`` or a number, as an exact Fraction within ``MAX_VALUE``; a plain message
    otherwise. The text is bounded (length, digits, exponent) by ``convzoo.bounds`` before ``Fraction`` sees it,
    which would otherwise compute ``10**5000`` for ``1e5000`` or meet Python's 4,300-digit limit (issue 22)."""
    if isinstance(text, Fraction):
        return bounds.parse_fraction(text, where, -MAX_VALUE, MAX_VALUE)
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return bounds.parse_fraction(int(text), where, -MAX_VALUE, MAX_VALUE)
    if isinstance(text, (float, np.floating)):
        if not np.isfinite(text):
            raise BadInputError(f"{where}: {text} is not a finite number")
        bounds.parse_number(float(text), where, -MAX_VALUE, MAX_VALUE)
        return Fraction(str(float(text)))  # the decimal a person typed, not the binary float behind it
    cleaned = str(text).strip().replace("\u2212", "-").replace(" ", "")  # a minus sign pasted from slides too
    if len(cleaned) > bounds.MAX_TEXT:
        raise BadInputError(f"{where} has {len(cleaned):,} characters; type a number of at most {bounds.MAX_TEXT}")
    if not cleaned:
        raise BadInputError(f"{where} is empty; type a number such as 0, 2, -1/2 or 0.25")
    if not (bounds.DECIMAL.fullmatch(cleaned) or bounds.FRACTION.fullmatch(cleaned)) or re.fullmatch(r".*/0+", cleaned):
        shown = cleaned if len(cleaned) <= 20 else cleaned[:20] + "..."
        raise BadInputError(f"{where}: {shown!r} is not a number; type an integer (2), a decimal (0.25) "
                            "or a fraction (-1/2)")
    return bounds.parse_fraction(cleaned, where, -MAX_VALUE, MAX_VALUE)


def parse_matrix(rows: Any, name: str = "matrix") -> np.ndarray:
    """A grid of numbers (list of rows, strings or numbers) as a 2-D object array of Fractions."""
    if isinstance(rows, np.ndarray):
        rows = rows.tolist()
    if not isinstance(rows, (list, tuple)) or not rows:
        raise BadInputError(f"the {name} is empty; it needs at least one row of numbers")
    if not all(isinstance(row, (list, tuple)) for row in rows):
        raise BadInputError(f"the {name} must be a list of rows, each a list of numbers")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise BadInputError(f"the {name} has ragged rows (lengths {sorted(widths)}); every row needs the same "
                            "number of values")
    if widths == {0}:
        raise BadInputError(f"the {name} has empty rows; it needs at least one column")
    parsed = [[parse_number(v, f"{name}, row {i + 1}, column {j + 1}") for j, v in enumerate(row)]
              for i, row in enumerate(rows)]
    return exact(parsed)


def exact(values: Any) -> np.ndarray:
    """Any array-like of rationals as an object array of Fractions (floats by their decimal repr)."""
    array = np.asarray(values, dtype=object)
    out = np.empty(array.shape, dtype=object)
    for index, v in np.ndenumerate(array):
        out[index] = parse_number(v)
    return out


def is_exact(array: np.ndarray) -> bool:
    return array.dtype == object


def _common(*arrays: np.ndarray) -> list[np.ndarray]:
    """Exact if every array is exact, else float64 throughout."""
    if all(is_exact(a) for a in arrays):
        return list(arrays)
    return [np.asarray(a, dtype=np.float64) if is_exact(a) else a for a in arrays]


def format_number(value: Any) -> str:
    """As on the slides: ``7/2``, ``-1/2``, ``2``; a decimal only where a fraction would not help."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        if value.denominator <= MAX_DENOMINATOR_SHOWN:
            return f"{value.numerator}/{value.denominator}"
        return f"≈{float(value):.4g}"
    value = float(value)
    return "0" if value == 0 else f"{value:.4g}"


def format_matrix(array: np.ndarray) -> list[list[str]]:
    return [[format_number(v) for v in row] for row in np.asarray(array, dtype=object)]


# ----------------------------------------------------------------------------------------------
# sizes


def output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1, what: str = "filter") -> int:
    """floor((n + 2p - d(k - 1) - 1) / s) + 1, with a message when the window does not fit."""
    if stride < 1:
        raise BadInputError(f"stride must be at least 1, got {stride}: the {what} has to move")
    if padding < 0 or dilation < 1:
        raise BadInputError(f"padding must be 0 or more and dilation 1 or more, got padding {padding}, "
                            f"dilation {dilation}")
    span = dilation * (k - 1) + 1
    if span > n + 2 * padding:
        raise BadInputError(f"the {what} spans {span} pixels but the input is only {n + 2 * padding} wide with "
                            f"padding {padding}; make the {what} smaller, or add padding")
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def output_size_formula(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> str:
    """The formula with the numbers put in, e.g. ``floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2``."""
    size = output_size(n, k, stride, padding, dilation)
    return f"floor(({n} + 2·{padding} - {dilation}·({k} - 1) - 1) / {stride}) + 1 = {size}"


# ----------------------------------------------------------------------------------------------
# the operations: one engine for 1-D, 2-D and 3-D (``axes``), as torch's conv1d, conv2d and conv3d

SHAPES = {1: "L", 2: "H, W", 3: "D, H, W"}  # the spatial axes as torch's documentation names them
POSITIONS = {1: ("position",), 2: ("row", "column"), 3: ("frame", "row", "column")}


def _with_channels(x: Any, axes: int) -> np.ndarray:
    """``(C, *n)``: a single-channel input gains its channel axis."""
    x = np.asarray(x)
    if x.ndim == axes:
        return x[None]
    if x.ndim != axes + 1:
        raise BadInputError(f"expected an input of shape ({SHAPES[axes]}) or (C, {SHAPES[axes]}), got shape {x.shape}")
    return x


def _as_filters(weight: Any, axes: int, channels: int) -> np.ndarray:
    """``(F, C, *k)``: one filter, or several single-channel ones, gain the axes they leave out."""
    weight = np.asarray(weight)
    if weight.ndim == axes:
        weight = weight[None, None]
    elif weight.ndim == axes + 1:  # several single-channel filters
        weight = weight[:, None]
    if weight.ndim != axes + 2:
        raise BadInputError(f"expected filters of {axes} to {axes + 2} axes ending in the kernel's {axes}, got "
                            f"{weight.shape}")
    if weight.shape[1] != channels:
        raise BadInputError(f"the filters have {weight.shape[1]} channels but the input has {channels}; "
                            "each filter needs one slice per input channel")
    return weight


def pad(x: np.ndarray, padding: PerAxis, axes: int = 2) -> np.ndarray:
    """Zero padding on the last ``axes`` axes."""
    widths = _per_axis(padding, axes, "padding", 0)
    zero = Fraction(0) if is_exact(x) else 0
    return np.pad(x, [(0, 0)] * (x.ndim - axes) + [(p, p) for p in widths], constant_values=zero)


def _sliding(axes: int, stride: PerAxis, padding: PerAxis, dilation: PerAxis) -> tuple[tuple[int, ...], ...]:
    """Stride, padding and dilation, one value per spatial axis."""
    return (_per_axis(stride, axes, "stride", 1), _per_axis(padding, axes, "padding", 0),
            _per_axis(dilation, axes, "dilation", 1))


def _output_shape(shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  dilation: Sequence[int]) -> tuple[int, ...]:
    return tuple(output_size(*sizes) for sizes in zip(shape, kernel, stride, padding, dilation))


def convolve(x: Any, weight: Any, bias: Sequence[Any] | np.ndarray | None = None, stride: PerAxis = 1,
             padding: PerAxis = 0, dilation: PerAxis = 1, *, axes: int = 2) -> np.ndarray:
    """Cross-correlation as ``torch.nn.functional.conv1d/conv2d/conv3d`` (``axes`` 1, 2, 3) on one sample, no
    groups: input ``(C, *n)``, filters ``(F, C, *k)``, output ``(F, *n')``; exact in, exact out."""
    x = _with_channels(x, axes)
    weight = _as_filters(weight, axes, x.shape[0])
    stride, padding, dilation = _sliding(axes, stride, padding, dilation)
    shape = _output_shape(x.shape[1:], weight.shape[2:], stride, padding, dilation)
    bias_array = None if bias is None else (exact(bias) if is_exact(weight) else np.asarray(bias, np.float64))
    if bias_array is not None:
        if bias_array.shape != (weight.shape[0],):
            raise BadInputError(f"expected one bias per filter ({weight.shape[0]}), got {bias_array.shape[0]}")
        x, weight, bias_array = _common(x, weight, bias_array)
    else:
        x, weight = _common(x, weight)
    xp = pad(x, padding, axes)
    out = np.zeros((weight.shape[0], *shape), dtype=object if is_exact(x) else np.result_type(x, weight))
    if is_exact(x):
        out[...] = Fraction(0)
    # One kernel offset at a time: every output sees the input shifted by that offset, so the sum over
    # offsets of (filter tap x shifted input) is the whole correlation, vectorised over the positions.
    for offset in np.ndindex(*weight.shape[2:]):
        window = tuple(slice(o * d, o * d + step * (m - 1) + 1, step)
                       for o, d, step, m in zip(offset, dilation, stride, shape))
        out += np.tensordot(weight[(slice(None), slice(None), *offset)], xp[(slice(None), *window)], axes=([1], [0]))
    if bias_array is not None:
        out += bias_array.reshape(-1, *(1,) * axes)
    return out


def conv2d(x: Any, weight: Any, bias: Sequence[Any] | np.ndarray | None = None, stride: PerAxis = 1,
           padding: PerAxis = 0, dilation: PerAxis = 1) -> np.ndarray:
    """``torch.nn.functional.conv2d`` on one image: ``(C, H, W)`` or ``(H, W)`` in, ``(F, H', W')`` out."""
    return convolve(x, weight, bias, stride, padding, dilation, axes=2)


def _windows(x: np.ndarray, kernel: Pair, stride: Pair | None, what: str) -> tuple[np.ndarray, int]:
    (kh, kw) = _per_axis(kernel, 2, f"{what} size", 1)
    (sh, sw) = _per_axis(stride if stride is not None else (kh, kw), 2, f"{what} stride", 1)
    output_size(x.shape[-2], kh, sh, what=f"{what} window")
    output_size(x.shape[-1], kw, sw, what=f"{what} window")
    windows = sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    return windows, kh * kw


def max_pool2d(x: np.ndarray, kernel: Pair, stride: Pair | None = None) -> np.ndarray:
    """The largest value of each window (stride defaults to the window, as in torch); keeps the last two axes."""
    windows, _ = _windows(x, kernel, stride, "pooling")
    return windows.max(axis=(-2, -1))


def avg_pool2d(x: np.ndarray, kernel: Pair, stride: Pair | None = None) -> np.ndarray:
    windows, count = _windows(x, kernel, stride, "pooling")
    total = windows.sum(axis=(-2, -1))
    return total * Fraction(1, count) if is_exact(x) else total / count


def relu(x: np.ndarray) -> np.ndarray:
    if is_exact(x):
        return np.where(x > 0, x, Fraction(0)).astype(object)
    return np.maximum(x, 0)


def pool2d(x: np.ndarray, mode: str, kernel: Pair, stride: Pair | None = None) -> np.ndarray:
    if mode == "max":
        return max_pool2d(x, kernel, stride)
    if mode in ("average", "avg", "mean"):
        return avg_pool2d(x, kernel, stride)
    raise BadInputError(f"pooling is 'max' or 'average', got {mode!r}")


# ----------------------------------------------------------------------------------------------
# one output value, written out as on the slides


@dataclass(frozen=True)
class Expansion:
    """How one output value is made: the products summed, and where the window sits on the input."""

    terms: list[tuple[Any, Any]]  # (input value, filter value), channel by channel, each in reading order
    bias: Any
    value: Any
    window: list[tuple[int, ...]]  # (channel, *position) in the *padded* input, same order as terms

    @property
    def at(self) -> tuple[tuple[int, ...], ...]:
        """Each term's position in the padded input without its channel, for a one-channel input."""
        return tuple(place[1:] for place in self.window)

    @property
    def text(self) -> str:
        products = " + ".join(f"({format_number(a)} × {format_number(w)})" for a, w in self.terms)
        bias = "" if self.bias == 0 else f" + {format_number(self.bias)}"
        return f"{products}{bias} = {format_number(self.value)}"


def expand(x: Any, weight: Any, f: int, *position: int, bias: Sequence[Any] | None = None, stride: PerAxis = 1,
           padding: PerAxis = 0, dilation: PerAxis = 1) -> Expansion:
    """The terms behind ``convolve(...)[f, *position]``, one index per spatial axis (``expand(x, w, f, row, col)``
    in 2-D); its ``text`` reads ``(0 × -1/2) + (1 × 1) + ... = 2``. The value is the engine's own output, so what
    a click writes out is what was computed."""
    axes = len(position)
    x = _with_channels(x, axes)
    weight = _as_filters(weight, axes, x.shape[0])
    out = convolve(x, weight, bias, stride, padding, dilation, axes=axes)
    if not (0 <= f < out.shape[0] and all(0 <= i < n for i, n in zip(position, out.shape[1:]))):
        where = ", ".join(f"{name} {i + 1}" for name, i in zip(POSITIONS[axes], position))
        raise BadInputError(f"there is no output cell (filter {f + 1}, {where}); the output is {out.shape[0]} "
                            f"filter(s) of {'x'.join(map(str, out.shape[1:]))}")
    stride, padding, dilation = _sliding(axes, stride, padding, dilation)
    xp = pad(x, padding, axes)
    terms, window = [], []
    for c in range(x.shape[0]):
        for offset in np.ndindex(*weight.shape[2:]):
            at = tuple(i * s + o * d for i, s, o, d in zip(position, stride, offset, dilation))
            terms.append((xp[(c, *at)], weight[(f, c, *offset)]))
            window.append((c, *at))
    b = 0 if bias is None else (exact(bias) if is_exact(weight) else np.asarray(bias, np.float64))[f]
    return Expansion(terms=terms, bias=b, value=out[(f, *position)], window=window)
