"""The filter playground: the lecture's convolution by hand, then the same filters on a photo, then
the filters a trained network learned for itself. The first tab of the app (issue 3).

Three views share one set of filters and settings:
- by hand: a small image and filters as editable grids, outputs as exact fractions, any output cell
  written out as the slides write it, its window lit up on the input;
- on an image: the same filters on an uploaded or bundled photo, feature maps on a diverging scale;
- inside a trained CNN: a stored classifier's first-layer filters and first two layers' feature maps.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from math import comb
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.demos import beyond, common, examples, plots
from convzoo.demos.common import as_sent, read_upload, readable_errors, safe_image, size_box
from convzoo.errors import BadInputError, ConvzooError
from convzoo.registry import Store
from convzoo.runtime import load_model
from convzoo.sizes import Size

LETTERS = "ABCD"
MAX_FILTERS = sizes.FILTERS.high
MAX_SIDE = sizes.IMAGE_SIDE  # every limit of the views, with its reason: convzoo.sizes (issue 22)
MAX_KERNEL = sizes.FILTER_SIDE
POOLING = ("max", "average", "none")
DEFAULT_FILTERS = 2  # shown at first; the slider and the buttons show up to MAX_FILTERS
DRAWN_LINES = examples.DRAWN[0]
EXERCISE_IMAGE = [[0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, -2, 0, -2]]

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
    return cut(_grid(rows, what, side), height, width)


def cut(rows: list[list[Any]], height: int, width: int) -> list[list[str]]:
    """The top-left ``height`` x ``width`` of a grid, new cells 0."""
    return [[(str(rows[i][j]) if i < len(rows) and j < len(rows[i]) else "0") for j in range(width)]
            for i in range(height)]


def remember(kept: Any, shown: Any, side: int, what: str = "image") -> list[list[str]]:
    """The grid a view keeps behind the one it shows: ``side`` x ``side`` cells, the shown ones written over
    the kept ones. Shrinking the shown grid hides cells without losing them, so growing it back restores
    them (issue 22: typing 12 into Image rows passes through 1)."""
    full = cut(_grid(kept, what, side) if kept else [], side, side)
    for i, row in enumerate(_grid(shown, what, side)):
        for j, value in enumerate(row):
            full[i][j] = str(value)
    return full


def _grid(value: Any, what: str = "grid", side: int | None = None) -> list[list[Any]]:
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


# ----------------------------------------------------------------------------------------------
# the computation behind the matrix view


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
    parsed = [cv.parse_matrix(_grid(f, f"filter {LETTERS[i]}", MAX_KERNEL), f"filter {LETTERS[i]}")
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
    x = cv.parse_matrix(_grid(image, "image", MAX_SIDE), "image")  # sized before a cell is parsed
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


CELL = re.compile(rf"^([{LETTERS}]): (pooled )?row (\d+), column (\d+)$")
Cell = tuple[int, int, int, bool]  # filter, row, column, and whether it is a pooled value


def cell_label(f: int, row: int, col: int, pooled: bool = False) -> str:
    return f"{LETTERS[f]}: {'pooled ' if pooled else ''}row {row + 1}, column {col + 1}"


def cell_choices(result: Result) -> list[str]:
    """Every output value one can have written out: the convolution's, then the pooled ones."""
    maps = [(result.output, False)] + ([(result.pooled, True)] if result.pooled is not None else [])
    return [cell_label(f, i, j, pooled) for values, pooled in maps for f in range(values.shape[0])
            for i in range(values.shape[1]) for j in range(values.shape[2])]


def parse_cell(label: str | None, result: Result) -> Cell:
    """The chosen output cell, or the first one when the choice no longer exists (e.g. after a resize)."""
    match = CELL.match(label or "")
    if match:
        pooled = bool(match[2])
        f, row, col = LETTERS.index(match[1]), int(match[3]) - 1, int(match[4]) - 1
        values = result.pooled if pooled else result.output
        if values is not None and f < values.shape[0] and row < values.shape[1] and col < values.shape[2]:
            return f, row, col, pooled
    return 0, 0, 0, False


# ----------------------------------------------------------------------------------------------
# HTML for the matrix view

CSS = """
.cz-row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.cz-card { border: 1px solid #d0d4dc; border-radius: 8px; padding: 10px 12px; background: #fafbfc; color: #111; }
.cz-card h4 { margin: 0 0 6px 0; font-size: 15px; color: #111; }
.cz-grid { border-collapse: collapse; margin: 4px 0; font-family: ui-monospace, monospace; font-size: 16px; }
.cz-grid td { border: 1px solid #9aa3b2; min-width: 44px; height: 34px; text-align: center; padding: 2px 6px;
  background: #fff; color: #111; }
.cz-grid td[data-cell] { cursor: pointer; }
.cz-grid td[data-cell]:hover { background: #e8f0ff; }
.cz-grid td.cz-sel { background: #ffd866 !important; font-weight: 700; outline: 2px solid #c77d00; }
.cz-grid td.cz-win { background: #ffe9a8; font-weight: 700; outline: 2px solid #c77d00; }
.cz-grid td.cz-pad { background: #eceef2; color: #888; }
.cz-grid td small { display: block; font-size: 11px; color: #8a5a00; font-weight: 400; }
.cz-note { font-size: 13px; color: #444; margin: 2px 0 8px 0; }
.cz-sum { font-family: ui-monospace, monospace; font-size: 15px; background: #fff7dd; color: #111;
  border-left: 4px solid #c77d00; padding: 8px 10px; margin-top: 8px; white-space: normal; word-break: break-word; }
.cz-op { font-size: 28px; align-self: center; color: #555; }
.cz-warn { color: #8a2a00; max-width: 260px; }
"""
CLICK_JS = """
element.addEventListener('click', (event) => {
  const cell = event.target.closest('[data-cell]');
  if (cell) { trigger('click', {cell: cell.dataset.cell}); }
});
"""


def _table(values: np.ndarray, cells: Callable[[int, int], str] = lambda i, j: "") -> str:
    rows = []
    for i, row in enumerate(np.asarray(values, dtype=object)):
        rows.append("<tr>" + "".join(f"<td{cells(i, j)}>{html.escape(cv.format_number(v))}</td>"
                                     for j, v in enumerate(row)) + "</tr>")
    return f"<table class='cz-grid'>{''.join(rows)}</table>"


def _sizes(n: tuple[int, int], k: tuple[int, int], s: Settings) -> str:
    rows = cv.output_size_formula(n[0], k[0], s.stride, s.padding, s.dilation)
    if n[0] == n[1] and k[0] == k[1]:
        return f"size (rows and columns): {rows}"
    return f"rows: {rows}<br>columns: {cv.output_size_formula(n[1], k[1], s.stride, s.padding, s.dilation)}"


def outputs_html(result: Result, chosen: Cell) -> str:
    s = result.settings
    n, k = result.image.shape[1:], result.weights.shape[2:]
    cards = []
    for f in range(result.output.shape[0]):
        letter = LETTERS[f]
        bias = "" if result.bias[f] == 0 else f" + {cv.format_number(result.bias[f])}"

        def clickable(i: int, j: int, f: int = f, pooled: bool = False) -> str:
            selected = " class='cz-sel'" if (f, i, j, pooled) == chosen else ""
            return f" data-cell='{html.escape(cell_label(f, i, j, pooled))}'{selected}"

        parts = [f"<h4>Output {letter} = image ⋆ filter {letter}{html.escape(bias)}</h4>",
                 _table(result.output[f], clickable),
                 f"<div class='cz-note'>{_sizes(n, k, s)}</div>"]
        if result.activated is not None:
            parts += ["<h4>after ReLU: max(0, x)</h4>", _table(result.activated[f])]
        if result.pooled is not None:
            stride = f", stride {s.pool_stride}" if s.pool_stride != s.pool_size else ""
            parts += [f"<h4>{s.pool}-pool {s.pool_size}x{s.pool_size}{stride}</h4>",
                      _table(result.pooled[f], partial(clickable, f=f, pooled=True))]
        elif result.pool_error:
            parts += [f"<h4>{s.pool}-pool {s.pool_size}x{s.pool_size}: does not fit</h4>",
                      f"<div class='cz-note cz-warn'>{html.escape(result.pool_error)}</div>"]
        cards.append(f"<div class='cz-card' data-output='{letter}'>{''.join(parts)}</div>")
    hint = "<div class='cz-note'>Click any output or pooled value to see how it is made.</div>"
    return f"{hint}<div class='cz-row'>{''.join(cards)}</div>"


def pool_html(result: Result, chosen: Cell) -> str:
    """A pooled value: its window on the map it pools, lit up, and the winner (max) or the mean written out."""
    s = result.settings
    f, row, col, _ = chosen
    source = result.pooled_from[f]
    top, left = row * s.pool_stride, col * s.pool_stride
    window = source[top:top + s.pool_size, left:left + s.pool_size]
    values = list(window.ravel())
    value = result.pooled[f, row, col]
    if s.pool == "max":
        winner = next(k for k, v in enumerate(values) if v == value)  # the first of equal maxima, as torch picks
        won = (top + winner // s.pool_size, left + winner % s.pool_size)
        text = f"max({', '.join(cv.format_number(v) for v in values)}) = {cv.format_number(value)}"
    else:
        won = None
        text = (f"({' + '.join(cv.format_number(v) for v in values)}) / {len(values)} = "
                f"{cv.format_number(value)}")

    def lit(i: int, j: int) -> str:
        if (i, j) == won:
            return " class='cz-sel'"
        return " class='cz-win'" if top <= i < top + s.pool_size and left <= j < left + s.pool_size else ""

    stage = "after ReLU" if result.activated is not None else "the convolution's output"
    letter = LETTERS[f]
    winner_note = "; the winner is the darker cell" if won is not None else ""
    return (f"<div class='cz-card'><h4>Output {letter}, pooled row {row + 1}, column {col + 1} = "
            f"{html.escape(cv.format_number(value))}</h4>"
            f"<div class='cz-note'>{s.pool}-pooling window on output {letter} ({stage}){winner_note}</div>"
            f"{_table(source, lit)}"
            f"<div class='cz-sum' data-testid='expansion'>{html.escape(text)}</div></div>")


def expansion_html(result: Result, chosen: Cell) -> str:
    if chosen[3]:
        return pool_html(result, chosen)
    s = result.settings
    f, row, col, _ = chosen
    expansion = cv.expand(result.image, result.weights, f, row, col, bias=result.bias, stride=s.stride,
                          padding=s.padding, dilation=s.dilation)
    weights_at = {(r, q): w for (_, r, q), (_, w) in zip(expansion.window, expansion.terms)}
    padded = cv.pad(result.image, s.padding)[0]
    height, width = result.image.shape[1:]

    def lit(i: int, j: int) -> str:
        if (i, j) in weights_at:
            return " class='cz-win'"
        inside = s.padding <= i < s.padding + height and s.padding <= j < s.padding + width
        return "" if inside else " class='cz-pad'"

    cells = []
    for i, values in enumerate(padded):
        tds = []
        for j, v in enumerate(values):
            weight = ""
            if (i, j) in weights_at:
                weight = f"<small>× {html.escape(cv.format_number(weights_at[(i, j)]))}</small>"
            tds.append(f"<td{lit(i, j)}>{html.escape(cv.format_number(v))}{weight}</td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    image_table = f"<table class='cz-grid'>{''.join(cells)}</table>"
    padding_note = " (grey: zero padding)" if s.padding else ""
    letter = LETTERS[f]
    return (f"<div class='cz-card'><h4>Output {letter}, row {row + 1}, column {col + 1} = "
            f"{html.escape(cv.format_number(expansion.value))}</h4>"
            f"<div class='cz-row'><div><div class='cz-note'>image{padding_note}: the window, each value × its filter "
            f"weight</div>{image_table}</div><div class='cz-op'>⋆</div>"
            f"<div><div class='cz-note'>filter {letter}</div>{_table(result.weights[f, 0])}</div></div>"
            f"<div class='cz-sum' data-testid='expansion'>{html.escape(expansion.text)}</div></div>")


def _escaped(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", text)  # the user's own text must not become markdown


def _message(error: Exception) -> str:
    return f"**Cannot compute this:** {_escaped(str(error))}"


def matrix_state(image: Any, *values: Any) -> tuple[str, list[str], str | None, str, str]:
    """``values``: the layer (``Layer.from_values``), then the chosen cell. Outputs (HTML), the output cells
    one can choose and the chosen one, that cell written out (HTML), and a message (empty when all is well)."""
    *layer, cell = values
    try:
        result = Layer.from_values(layer).compute(image)
        chosen = parse_cell(cell, result)
        message = (f"**Pooling does not fit:** {_escaped(result.pool_error.rstrip('.'))}. The convolution's outputs "
                   "are shown without it." if result.pool_error else "")
        return (outputs_html(result, chosen), cell_choices(result), cell_label(*chosen), expansion_html(result, chosen),
                message)
    except ConvzooError as e:
        return "", [], None, "", _message(e)


@readable_errors
def matrix_view(image: Any, *values: Any) -> tuple[str, Any, str, str]:
    """``matrix_state`` for the UI: the cell chooser as a Dropdown update, left alone after a mistake."""
    html_out, choices, chosen, expansion, message = matrix_state(image, *values)
    return html_out, gr.Dropdown(choices=choices, value=chosen) if choices else gr.Dropdown(), expansion, message


class CellClick(gr.EventData):
    """A click on an output cell (``CLICK_JS`` sends the cell's label)."""

    def __init__(self, target: Any, data: Any) -> None:
        super().__init__(target, data)
        self.cell = (data or {}).get("cell") if isinstance(data, dict) else None


def pick_cell(event: CellClick, image: Any, *values: Any) -> tuple[str, Any, str, str]:
    """A clicked cell becomes the chosen one; a click beside the cells keeps the choice."""
    *layer, cell = values
    return matrix_view(image, *layer, event.cell or cell)


# ----------------------------------------------------------------------------------------------
# the image view


class Recent:
    """The last few results by their inputs: the same request twice (a tab shown, then its image mounted,
    or "Apply" pressed again) is drawn once, which matters on a 2-core CPU."""

    def __init__(self, size: int = 8) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    @staticmethod
    def key(*values: Any) -> str:
        digest = hashlib.sha256()
        for value in values:
            if isinstance(value, np.ndarray) and value.dtype == object:  # exact Fractions: by value, not address
                digest.update(repr(value.tolist()).encode())
            elif isinstance(value, np.ndarray):
                digest.update(f"{value.shape}{value.dtype}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def get(self, key: str) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: str, value: Any) -> Any:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_IMAGE_VIEWS, _INSIDE_VIEWS, _FILTER_GRIDS = Recent(), Recent(), Recent()


def photo_pixels(value: Any) -> np.ndarray:
    """The photo as uint8 pixels, HxW or HxWxC, whatever form it arrives in (pixels from the page, a file or
    upload from the API): files through the service's reader and limits (``read_upload``)."""
    if value is None:
        raise BadInputError("no image yet: upload one or choose an example")
    if isinstance(value, Image.Image):
        value = np.asarray(value)
    elif not isinstance(value, np.ndarray):
        value = np.asarray(read_upload(value))
    if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (1, 2, 3, 4)) or 0 in value.shape:
        raise BadInputError(f"the image must be rows x columns of grey or colour pixels, got shape {value.shape}")
    if value.shape[0] * value.shape[1] > common.UPLOAD_LIMITS.max_pixels:
        raise BadInputError(f"the image has {value.shape[0]}x{value.shape[1]} pixels, more than the limit of "
                            f"{common.UPLOAD_LIMITS.max_pixels:,}; scale it down first")
    return value if value.dtype == np.uint8 else np.clip(value, 0, 255).astype(np.uint8)


def image_settings(settings: Settings, height: int, width: int) -> Settings:
    """The by-hand limits hold on a photo too; padding and dilation are also bounded by the photo's own size
    (half its shorter side of padding at most doubles the picture; a gap wider than it sees nothing)."""
    side = min(height, width)
    Size("padding", 0, side // 2).parse(settings.padding, f"padding on a {height}x{width} image")
    Size("dilation", 1, side).parse(settings.dilation, f"dilation on a {height}x{width} image")
    return settings


@readable_errors
def image_view(pixels: Any, mode: str, max_side: Any, *layer: Any) -> tuple[Image.Image | None, str]:
    """The same filters on a photo: one row per filter, its map per channel, then the pooled maps."""
    if pixels is None:
        return None, "Upload an image or choose an example."
    try:
        chosen = Layer.from_values(layer)  # every setting and value bounded before any pixel is touched
        count = len(chosen.filters)
        weights, bias = parse_filters(list(chosen.filters), list(chosen.biases))
        side = sizes.IMAGE_VIEW_SIDE.parse(max_side)
        pixels = photo_pixels(pixels)
        key = Recent.key(pixels, mode == "grey", side, weights, bias, chosen.settings)
        if (known := _IMAGE_VIEWS.get(key)) is not None:
            return known
        pixels = examples.shrink(pixels, side)
        s = image_settings(chosen.settings, *pixels.shape[:2])
        if pixels.ndim == 3 and (mode == "grey" or pixels.shape[2] == 1):
            pixels = np.asarray(Image.fromarray(pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, 0])
                                .convert("L"))
        x = pixels.astype(np.float64) / 255  # pixels 0..1: outputs are in the filter's own units
        channels = [("grey", x)] if x.ndim == 2 else list(zip(("red", "green", "blue"), x[:, :, :3].transpose(2, 0, 1)))
        w, b = weights.astype(np.float64), bias.astype(np.float64)
        rows = []
        for f in range(count):
            maps, pooled = [], []
            for name, channel in channels:
                out = cv.conv2d(channel, w[f:f + 1], b[f:f + 1], stride=s.stride, padding=s.padding,
                                dilation=s.dilation)[0]
                out = cv.relu(out) if s.relu else out
                maps.append((f"{LETTERS[f]} on {name} {out.shape[0]}x{out.shape[1]}", out))
                if s.pool != "none":
                    p = cv.pool2d(out, s.pool, s.pool_size, s.pool_stride)
                    pooled.append((f"{name}, {s.pool}-pooled {p.shape[0]}x{p.shape[1]}", p))
            rows.append(maps + pooled)
        title = (f"{pixels.shape[0]}x{pixels.shape[1]} input · stride {s.stride} · padding {s.padding} · dilation "
                 f"{s.dilation}{' · ReLU' if s.relu else ''}")
        # large panels on a robust scale: a photo's few sharpest edges no longer wash the rest out (issue 23)
        figure = plots.map_grid(rows, scale="row", title=title, panel_inches=3.6 if len(channels) == 1 else 2.4,
                                robust=True)
        return _IMAGE_VIEWS.put(key, (figure, ""))
    except ConvzooError as e:
        return None, _message(e)


@readable_errors
def load_example(name: str) -> np.ndarray:
    return examples.load(name, max_side=512)


# ----------------------------------------------------------------------------------------------
# inside a trained CNN


def _classifiers(store: Store) -> list[str]:
    """The stored classifiers with a convolution to look inside (not an MLP), the smallest, quickest to read,
    first."""
    from convzoo.demos.inside import has_convolution  # noqa: PLC0415 -- onnx only where the tab is built

    names = [m.name for m in store.models("classification") if has_convolution(m.onnx_path)]
    return sorted(names, key=lambda n: (not n.startswith("lenet"), n))


def no_classifier_text(store: Store) -> str:
    roots = ", ".join(f"`{root}`" for root in store.roots)
    return ("**No classifier in the model store** (" + roots + "). Train and export one, then restart the demo: "
            "`convzoo train lenet5-fashion` then `convzoo export lenet5-fashion` (a few minutes on a CPU).")


@readable_errors
def inside_view(store: Store, name: str | None, pixels) -> tuple[Image.Image | None, Image.Image | None,
                                                                  Image.Image | None, str]:
    """First-layer filters, first- and second-layer feature maps, and a few words on what they are."""
    from convzoo.demos.inside import MAX_MAPS, probe_stored  # onnx is only needed once someone looks inside

    if not name:
        return None, None, None, no_classifier_text(store)
    if pixels is None:
        return None, None, None, "Upload an image or choose an example."
    try:
        pixels = photo_pixels(pixels)
        key = Recent.key(store.roots, name, store.get(name).sha256, pixels)  # a re-export is a new model
        if (known := _INSIDE_VIEWS.get(key)) is not None:
            return known
        probe = probe_stored(store, name)
        pixels = examples.shrink(pixels, 256) if probe.preprocess.size is None else pixels
        from convzoo.runtime import preprocess_image  # noqa: PLC0415

        batch = preprocess_image(pixels, probe.preprocess)
        maps = probe.run(batch)
        layers = probe.layers
        filters_key = Recent.key(store.roots, name, store.get(name).sha256)
        filters = _FILTER_GRIDS.get(filters_key)
        if filters is None:  # the same for every input: drawn once per model
            shown = min(len(probe.weights), 64)
            filters = _FILTER_GRIDS.put(filters_key, plots.filter_grid(
                probe.weights[:shown], title=f"{name}: first-layer filters ({shown} of {len(probe.weights)}, "
                f"{probe.weights.shape[1]} channel(s) each)"))
        figures = []
        for index, (layer, layer_maps) in enumerate(zip(layers, maps)):
            n = min(MAX_MAPS, len(layer_maps))
            figures.append(plots.feature_maps(
                layer_maps[:n], title=f"layer {index + 1}: {n} of {len(layer_maps)} maps, {layer_maps.shape[1]}x"
                f"{layer_maps.shape[2]}, after {' → '.join(layer.ops)}; one colour scale for the layer",
                scale="shared"))  # one scale: the maps that respond most stand out, as they do for the next layer
        prediction = load_model(name, store).top_k(pixels, k=3)
        said = ", ".join(f"{label} {p:.0%}" for label, p in prediction.items())
        lines = [f"**{name}** sees a {batch.shape[2]}x{batch.shape[3]} {probe.preprocess.color} input "
                 f"and says: {said}."]
        lines += [f"- layer {i + 1}: {layer.description}" for i, layer in enumerate(layers)]
        if len(layers) < 2:
            lines.append("- this model has only one convolution, so there is no second layer to show.")
        return _INSIDE_VIEWS.put(key, (filters, figures[0], figures[1] if len(figures) > 1 else None, "\n".join(lines)))
    except ConvzooError as e:
        return None, None, None, _message(e)


# ----------------------------------------------------------------------------------------------
# the tab

OVERVIEW = """
## Filter playground
One convolution five ways: **by hand** on the lecture's 4×4 exercise, on a **1-D signal**, on a **graph**, with the
sizes of a **3-D** volume, then the same filters **on an image** and the filters a network learned **inside a
trained CNN**.
"""

INTRO = """
### A convolution by hand
The 4×4 image and the two 3×3 filters are the lecture's exercise. Each output value is the filter laid on one
3×3 window of the image, multiplied cell by cell and summed; then the filter slides on by the stride and does
it again. Deep-learning frameworks call this *convolution*; strictly it is cross-correlation (the filter is not
flipped). **Click any output value** to see its sum written out and its window lit up on the image. Edit any
number (fractions such as `-1/2` are fine), add a filter, load a preset, change stride, padding or pooling.
"""

LECTURE_NOTES = """
**Why slide one filter everywhere?** The same nine weights are used at every position, so a vertical line is
found wherever it is: move the line and its response moves with it (translation *equivariance*), with 9
weights instead of one weight per pixel. Filter A answers **2** on the vertical line of the exercise, filter B
**4** on the horizontal one; where the pattern is reversed the answer is negative.

**What pooling keeps and throws away.** Max-pooling keeps the strongest response in each window: *that* the
pattern is there (2 for A, 4 for B). It throws away *where* in the window it was and every weaker response, so
a small shift of the input hardly changes the pooled value: approximate translation *invariance*, bought by
forgetting position. Average pooling keeps how much of the pattern there is on average and blurs strong and
weak responses together. Either way the map shrinks, so the next layer sees a wider area with fewer numbers.

**Output size.** With input size n, padding p, dilation d, filter size k and stride s, each side of the output
has floor((n + 2p − d(k − 1) − 1) / s) + 1 values; the formula with your numbers is under each output.
"""

IMAGE_NOTES = """
### The same filters on a photo
Every filter of the matrix view above, with its stride, padding, dilation, ReLU and pooling, applied to a
real image (pixels scaled to 0..1). Red is where the image looks like the filter, blue where it looks like its
opposite (a dark line where the filter wants a bright one), white is no response. The vertical-line filter lights
up on vertical edges wherever they are: one small filter, the whole image. Choose "per channel" to run each
filter on red, green and blue separately.
"""

INSIDE_NOTES = """
### Inside a trained CNN
Nobody designed these filters: training found them. The first layer's filters still tend to look like the
presets, edge and line detectors at several orientations and colour blobs (cf. AlexNet's figure 3). Each feature
map is one filter's answer at every position of the input; the second layer combines the first layer's maps into
larger, more specific patterns. Read from the model's ONNX file with onnxruntime; no training framework involved.
"""


@dataclass
class ByHand:
    """The by-hand view's components; ``layer`` lists them in ``Layer.from_values`` order."""

    image: gr.Dataframe
    rows: gr.Number
    cols: gr.Number
    count: gr.Slider
    kernel: gr.Number
    add: gr.Button
    remove: gr.Button
    columns: list[gr.Column]
    grids: list[gr.Dataframe]
    presets: list[gr.Dropdown]
    biases: list[gr.Textbox]
    settings: list[gr.components.Component]
    message: gr.Markdown
    outputs: gr.HTML
    cell: gr.Dropdown
    expansion: gr.HTML
    kept_image: gr.State  # the image's cells outside its current size, kept for when it grows back
    kept_filters: gr.State  # the same for each filter
    restore: gr.Button

    @property
    def layer(self) -> list[gr.components.Component]:
        return [self.count, *self.grids, *self.biases, *self.settings]


def _filter_column(i: int, grid: dict[str, Any]) -> tuple[gr.Column, gr.Dataframe, gr.Dropdown, gr.Textbox]:
    letter = LETTERS[i]
    with gr.Column(visible=i < DEFAULT_FILTERS, min_width=200) as column:
        editable = gr.Dataframe(grid, label=f"Filter {letter}", datatype="str", type="array", interactive=True,
                                elem_id=f"pg-filter-{letter}")
        choice = gr.Dropdown(PRESETS, value=DEFAULT_PRESETS[i % len(DEFAULT_PRESETS)], label=f"Preset for {letter}")
        bias = gr.Textbox("0", label=f"Bias of {letter}", max_lines=1, elem_id=f"pg-bias-{letter}")
    return column, editable, choice, bias


SETTING_DEFAULTS = (1, 0, 1, False, "max", 2, 2)  # stride, padding, dilation, ReLU, pooling, its size and stride
RESIZE_INFO = "applied on Enter or when you leave the box; cells outside are kept"


def lecture_exercise() -> dict[str, Any]:
    """The lecture's exercise as the view starts: what "Back to the lecture's exercise" restores."""
    filters = [preset(DEFAULT_PRESETS[i % len(DEFAULT_PRESETS)], 3) for i in range(MAX_FILTERS)]
    return {"image": [[str(v) for v in row] for row in EXERCISE_IMAGE], "rows": 4, "cols": 4,
            "count": DEFAULT_FILTERS, "kernel": 3, "filters": filters, "biases": ["0"] * MAX_FILTERS,
            "presets": [DEFAULT_PRESETS[i % len(DEFAULT_PRESETS)] for i in range(MAX_FILTERS)],
            "settings": list(SETTING_DEFAULTS)}


def _by_hand() -> ByHand:
    start = lecture_exercise()
    defaults = [grid_value(f) for f in start["filters"]]
    with gr.Row():
        with gr.Column(scale=2, min_width=260):
            image = gr.Dataframe(grid_value(start["image"]), label="Image", datatype="str", type="array",
                                 interactive=True, elem_id="pg-image", show_row_numbers=True)
            with gr.Row():
                rows = size_box(sizes.IMAGE_ROWS, 4, "Image rows", min_width=80, elem_id="pg-rows",
                                info=f"{sizes.IMAGE_ROWS.info}, {RESIZE_INFO}")
                cols = size_box(sizes.IMAGE_COLUMNS, 4, "Image columns", min_width=80, elem_id="pg-cols",
                                info=f"{sizes.IMAGE_COLUMNS.info}, {RESIZE_INFO}")
            restore = gr.Button("Back to the lecture's exercise", size="sm", elem_id="pg-restore")
        with gr.Column(scale=5):
            with gr.Row():
                columns, grids, presets, biases = map(list, zip(*(_filter_column(i, defaults[i])
                                                                  for i in range(MAX_FILTERS))))
            with gr.Row():
                count = as_sent(gr.Slider(1, MAX_FILTERS, value=DEFAULT_FILTERS, step=1, label="Filters"))
                kernel = size_box(sizes.FILTER_SIZE, 3, "Filter size", min_width=80, elem_id="pg-kernel",
                                  info=f"{sizes.FILTER_SIZE.info}, {RESIZE_INFO}")
                add = gr.Button("Add a filter", size="sm")
                remove = gr.Button("Remove the last filter", size="sm")
    with gr.Row():
        stride, padding, dilation, relu, pooling, pool_size, pool_stride = SETTING_DEFAULTS
        settings = [size_box(sizes.STRIDE, stride, "Stride", min_width=80, elem_id="pg-stride"),
                    size_box(sizes.PADDING, padding, "Padding", min_width=80, elem_id="pg-padding"),
                    size_box(sizes.DILATION, dilation, "Dilation", min_width=80, elem_id="pg-dilation"),
                    gr.Checkbox(relu, label="ReLU after the convolution"),
                    gr.Radio(list(POOLING), value=pooling, label="Pooling"),
                    size_box(sizes.POOL_SIZE, pool_size, "Pooling size", min_width=80, elem_id="pg-pool-size"),
                    size_box(sizes.POOL_STRIDE, pool_stride, "Pooling stride", min_width=80,
                             elem_id="pg-pool-stride")]
    message = gr.Markdown("", elem_id="pg-message")
    first = matrix_state(grid_value(start["image"]), DEFAULT_FILTERS, *defaults, *start["biases"], *SETTING_DEFAULTS,
                         None)
    outputs = gr.HTML(first[0], css_template=CSS, js_on_load=CLICK_JS, elem_id="pg-outputs")
    cell = gr.Dropdown(first[1], value=first[2], label="Output cell written out", elem_id="pg-cell",
                       allow_custom_value=True)  # the API may name a cell of a grid it just resized
    expansion = gr.HTML(first[3], css_template=CSS, js_on_load=None, elem_id="pg-expansion")
    gr.Markdown(LECTURE_NOTES)
    kept_image = gr.State(remember(None, start["image"], MAX_SIDE))
    kept_filters = gr.State([remember(None, f, MAX_KERNEL, "filter") for f in start["filters"]])
    return ByHand(image, rows, cols, count, kernel, add, remove, columns, grids, presets, biases, settings, message,
                  outputs, cell, expansion, kept_image, kept_filters, restore)


def _wire_by_hand(v: ByHand) -> None:
    """Every handler has an api_name (or is private) so gradio_client, and the tests, can drive it."""
    inputs, outputs = [v.image, *v.layer, v.cell], [v.outputs, v.cell, v.expansion, v.message]
    edits = [v.image.change, v.count.change, *(g.change for g in v.grids), *(b.submit for b in v.biases),
             *(b.blur for b in v.biases), *(c.change for c in v.settings), v.cell.input]
    # the by-hand arithmetic is bounded to milliseconds, so several people's edits may run side by side
    gr.on(edits, matrix_view, inputs, outputs, api_name="convolve", trigger_mode="always_last",
          concurrency_limit=4, concurrency_id="by-hand")
    v.outputs.click(pick_cell, inputs, outputs, api_visibility="private", concurrency_id="by-hand")
    v.count.change(lambda n: [gr.Column(visible=i < _filters_shown(n)) for i in range(MAX_FILTERS)], v.count,
                   v.columns, api_visibility="private", queue=False)
    v.add.click(lambda n: min(MAX_FILTERS, _filters_shown(n) + 1), v.count, v.count, api_name="add_filter",
                queue=False)
    v.remove.click(lambda n: max(1, _filters_shown(n) - 1), v.count, v.count, api_name="remove_filter", queue=False)
    # a size applies once it is typed (Enter, or leaving the box): typing 12 passes through 1 (issue 22)
    gr.on([v.rows.submit, v.rows.blur, v.cols.submit, v.cols.blur], resize_image,
          [v.image, v.rows, v.cols, v.kept_image], [v.image, v.kept_image, v.message], api_name="resize_image",
          trigger_mode="always_last")
    gr.on([v.kernel.submit, v.kernel.blur], resize_filters, [v.kernel, *v.grids, v.kept_filters],
          [*v.grids, v.kept_filters, v.message], api_name="resize_filters", trigger_mode="always_last")
    for i, choice in enumerate(v.presets):
        choice.input(partial(load_preset, i), [choice, v.kernel, v.kept_filters], [v.grids[i], v.kept_filters,
                                                                                    v.message],
                     api_name=f"preset_{LETTERS[i]}")
    v.restore.click(restore_exercise, None, [v.image, v.rows, v.cols, v.count, v.kernel, *v.grids, *v.presets,
                                             *v.biases, *v.settings, v.kept_image, v.kept_filters, v.message],
                    api_name="restore_exercise")


def _filters_shown(n: Any) -> int:
    try:
        return sizes.FILTERS.parse(n)
    except ConvzooError:
        return DEFAULT_FILTERS


@readable_errors
def resize_image(grid: Any, height: Any, width: Any, kept: Any = None) -> tuple[Any, Any, str]:
    """The image at its new size: cells it had, or had before it shrank (``kept``), else 0."""
    try:
        height, width = sizes.IMAGE_ROWS.parse(height), sizes.IMAGE_COLUMNS.parse(width)
        full = remember(kept, grid, MAX_SIDE)
        return grid_value(cut(full, height, width)), full, ""
    except ConvzooError as e:
        return gr.skip(), gr.skip(), _message(e)


@readable_errors
def resize_filters(size: Any, *grids_and_kept: Any) -> tuple[Any, ...]:
    """Every filter at the new size, each keeping its cells outside it (``kept``: one grid per filter)."""
    *grids, kept = grids_and_kept if len(grids_and_kept) > MAX_FILTERS else (*grids_and_kept, None)
    try:
        k = sizes.FILTER_SIZE.parse(size)
        kept = kept if isinstance(kept, list) and len(kept) == len(grids) else [None] * len(grids)
        full = [remember(old, g, MAX_KERNEL, f"filter {LETTERS[i]}") for i, (old, g) in enumerate(zip(kept, grids))]
        return *[grid_value(cut(f, k, k)) for f in full], full, ""
    except ConvzooError as e:
        return *[gr.skip() for _ in grids], gr.skip(), _message(e)


@readable_errors
def load_preset(index: int, name: str, size: Any, kept: Any = None) -> tuple[Any, Any, str]:
    """A preset replaces its filter, the cells kept outside it too (they belonged to the filter it replaces)."""
    try:
        grid = preset(name, size)
        kept = list(kept) if isinstance(kept, list) and len(kept) == MAX_FILTERS else [None] * MAX_FILTERS
        kept[index] = remember(None, grid, MAX_KERNEL)
        return grid_value(grid), kept, ""
    except ConvzooError as e:
        return gr.skip(), gr.skip(), _message(e)


def restore_exercise() -> tuple[Any, ...]:
    """Everything the by-hand view shows, as the lecture set it (``lecture_exercise``)."""
    start = lecture_exercise()
    return (grid_value(start["image"]), start["rows"], start["cols"], start["count"], start["kernel"],
            *[grid_value(f) for f in start["filters"]], *start["presets"], *start["biases"], *start["settings"],
            remember(None, start["image"], MAX_SIDE), [remember(None, f, MAX_KERNEL) for f in start["filters"]],
            "")


def _on_an_image(by_hand: ByHand) -> gr.Tab:
    with gr.Tab("On an image", id="on-image") as view:
        gr.Markdown(IMAGE_NOTES)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                example = gr.Dropdown(examples.names(), value="camera (grey)", label="Example image")
                photo = safe_image(value=load_example("camera (grey)"), label="Image (upload your own)",
                                   type="numpy", image_mode=None, format="png", height=260, elem_id="pg-photo")
                mode = gr.Radio(["grey", "per channel"], value="grey", label="Channels")
                max_side = as_sent(gr.Slider(sizes.IMAGE_VIEW_SIDE.low, sizes.IMAGE_VIEW_SIDE.high, value=256, step=16,
                                     label="Scale the image down to (pixels)",
                                     info="padding at most half, dilation at most all of its shorter side"))
                apply = gr.Button("Apply the filters", variant="primary")
            with gr.Column(scale=3):
                maps = gr.Image(None, label="Feature maps (one row per filter)", type="pil", format="png",
                                interactive=False, elem_id="pg-maps", show_label=False)
                message = gr.Markdown("", elem_id="pg-image-message")
    gr.on([photo.change, mode.change, max_side.release, apply.click, view.select], image_view,
          [photo, mode, max_side, *by_hand.layer], [maps, message], api_name="filter_image", trigger_mode="always_last")
    example.change(load_example, example, photo, api_name="load_example")
    return view


def _inside(store: Store) -> None:
    with gr.Tab("Inside a trained CNN", id="inside") as view:
        gr.Markdown(INSIDE_NOTES)
        classifiers = _classifiers(store)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                model = gr.Dropdown(classifiers, value=classifiers[0] if classifiers else None,
                                    label="Classifier from the model store", interactive=bool(classifiers))
                example = gr.Dropdown(examples.names(), value=DRAWN_LINES, label="Example input")
                photo = safe_image(value=load_example(DRAWN_LINES), label="Input (upload your own)", type="numpy",
                                   image_mode=None, format="png", height=220, elem_id="pg-inside-photo")
                look = gr.Button("Look inside", variant="primary")
            with gr.Column(scale=3):
                info = gr.Markdown("" if classifiers else no_classifier_text(store), elem_id="pg-inside-info")
                pictures = [gr.Image(None, label=label, type="pil", format="png", interactive=False, elem_id=elem,
                                     show_label=False)
                            for label, elem in (("First-layer filters", "pg-learned"),
                                                ("First-layer feature maps", "pg-layer1"),
                                                ("Second-layer feature maps", "pg-layer2"))]
    gr.on([photo.change, model.change, look.click, view.select], partial(inside_view, store), [model, photo],
          [*pictures, info], api_name="inside_cnn", trigger_mode="always_last")
    example.change(load_example, example, photo, api_name="load_inside_example")


def tab(store: Store) -> None:
    gr.Markdown(OVERVIEW)
    with gr.Tabs():
        with gr.Tab("By hand", id="by-hand"):
            gr.Markdown(INTRO)  # the 4x4 exercise's own words stay with it, not above the other views (issue 23)
            by_hand = _by_hand()
        beyond.signal_tab()
        beyond.graph_tab()
        beyond.volume_tab()
        _on_an_image(by_hand)
        _inside(store)
    _wire_by_hand(by_hand)
