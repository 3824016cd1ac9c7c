"""Convolution, pooling and ReLU the way the lecture does them by hand, in numpy (no torch).

"Convolution" here is what deep-learning frameworks call it: cross-correlation, the filter slid over
the zero-padded input without flipping (``torch.nn.functional.conv2d``). The same code runs on float
arrays (images) and on object arrays of ``fractions.Fraction`` (the small matrices of the exercise),
so ``7/2`` stays ``7/2``. Shapes follow torch without the batch axis: inputs ``(C, H, W)``, filters
``(F, C, kh, kw)``, outputs ``(F, H', W')``.
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
MAX_DENOMINATOR_SHOWN = 10_000  # beyond this a fraction stops helping a reader; show a decimal instead


def _pair(value: Pair, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise BadInputError(f"{name} must be a whole number (or two), got {value!r}")
    if min(pair) < minimum:
        raise BadInputError(f"{name} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


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
# the operations


def _as_chw(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.ndim == 2:
        return x[None]
    if x.ndim != 3:
        raise BadInputError(f"expected an image of shape (H, W) or (C, H, W), got shape {x.shape}")
    return x


def _as_fckk(weight: np.ndarray, channels: int) -> np.ndarray:
    if weight.ndim == 2:
        weight = weight[None, None]
    elif weight.ndim == 3:  # several single-channel filters
        weight = weight[:, None]
    if weight.ndim != 4:
        raise BadInputError(f"expected filters of shape (kh, kw), (F, kh, kw) or (F, C, kh, kw), got {weight.shape}")
    if weight.shape[1] != channels:
        raise BadInputError(f"the filters have {weight.shape[1]} channels but the input has {channels}; "
                            "each filter needs one slice per input channel")
    return weight


def pad(x: np.ndarray, padding: Pair) -> np.ndarray:
    """Zero padding on the last two axes."""
    ph, pw = _pair(padding, "padding", 0)
    zero = Fraction(0) if is_exact(x) else 0
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)], constant_values=zero)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: Sequence[Any] | np.ndarray | None = None,
           stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1) -> np.ndarray:
    """Cross-correlation as ``torch.nn.functional.conv2d`` (one image, no groups): ``(F, H', W')``."""
    x = _as_chw(x)
    weight = _as_fckk(np.asarray(weight) if not isinstance(weight, np.ndarray) else weight, x.shape[0])
    (sh, sw), (dh, dw) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    ph, pw = _pair(padding, "padding", 0)
    kh, kw = weight.shape[2:]
    out_h = output_size(x.shape[1], kh, sh, ph, dh)
    out_w = output_size(x.shape[2], kw, sw, pw, dw)
    bias_array = None if bias is None else (exact(bias) if is_exact(weight) else np.asarray(bias, np.float64))
    if bias_array is not None:
        x, weight, bias_array = _common(x, weight, bias_array)
    else:
        x, weight = _common(x, weight)
    xp = pad(x, (ph, pw))
    out = np.zeros((weight.shape[0], out_h, out_w), dtype=object if is_exact(x) else np.result_type(x, weight))
    if is_exact(x):
        out[...] = Fraction(0)
    # One kernel offset at a time: every output pixel sees the input shifted by that offset,
    # so the sum over offsets of (filter tap x shifted input) is the whole correlation.
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
            out += np.tensordot(weight[:, :, i, j], xp[:, rows, cols], axes=([1], [0]))
    if bias_array is not None:
        if bias_array.shape != (weight.shape[0],):
            raise BadInputError(f"expected one bias per filter ({weight.shape[0]}), got {bias_array.shape[0]}")
        out += bias_array[:, None, None]
    return out


def _windows(x: np.ndarray, kernel: Pair, stride: Pair | None, what: str) -> tuple[np.ndarray, int]:
    (kh, kw) = _pair(kernel, f"{what} size", 1)
    (sh, sw) = _pair(stride if stride is not None else (kh, kw), f"{what} stride", 1)
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
# one output cell, written out as on the slides


@dataclass(frozen=True)
class Expansion:
    """How one output value is made: the products summed, and where the window sits on the input."""

    terms: list[tuple[Any, Any]]  # (input value, filter value), row by row, channel by channel
    bias: Any
    value: Any
    window: list[tuple[int, int, int]]  # (channel, row, column) in the *padded* input, same order as terms

    @property
    def text(self) -> str:
        products = " + ".join(f"({format_number(a)} × {format_number(w)})" for a, w in self.terms)
        bias = "" if self.bias == 0 else f" + {format_number(self.bias)}"
        return f"{products}{bias} = {format_number(self.value)}"


def expand(x: np.ndarray, weight: np.ndarray, f: int, row: int, col: int, bias: Sequence[Any] | None = None,
           stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1) -> Expansion:
    """The terms behind ``conv2d(...)[f, row, col]``; its ``text`` reads ``(0 × -1/2) + (1 × 1) + ... = 2``."""
    x = _as_chw(x)
    weight = _as_fckk(weight, x.shape[0])
    (sh, sw), (dh, dw) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    out = conv2d(x, weight, bias, stride, padding, dilation)
    if not (0 <= f < out.shape[0] and 0 <= row < out.shape[1] and 0 <= col < out.shape[2]):
        raise BadInputError(f"there is no output cell (filter {f + 1}, row {row + 1}, column {col + 1}); "
                            f"the output is {out.shape[0]} filter(s) of {out.shape[1]}x{out.shape[2]}")
    xp = pad(x, padding)
    terms, window = [], []
    for c in range(x.shape[0]):
        for i in range(weight.shape[2]):
            for j in range(weight.shape[3]):
                r, q = row * sh + i * dh, col * sw + j * dw
                terms.append((xp[c, r, q], weight[f, c, i, j]))
                window.append((c, r, q))
    b = 0 if bias is None else (exact(bias) if is_exact(weight) else np.asarray(bias, np.float64))[f]
    return Expansion(terms=terms, bias=b, value=out[f, row, col], window=window)
