"""The by-hand view: the lecture's convolution on small grids typed by hand, outputs as exact fractions, any
output or pooled value written out as the slides write it, its window lit up (the widget: ``demos.byhand``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.demos import byhand
from convzoo.demos.byhand import CellClick
from convzoo.demos.common import as_sent, readable_errors, size_box
from convzoo.demos.playground.grid import (DEFAULT_PRESETS, MAX_KERNEL, MAX_SIDE, PRESETS, cut, grid_value, preset,
                                           remember)
from convzoo.demos.playground.layer import LETTERS, MAX_FILTERS, POOLING, Layer, Result, Settings
from convzoo.errors import ConvzooError

DEFAULT_FILTERS = 2  # shown at first; the slider and the buttons show up to MAX_FILTERS
EXERCISE_IMAGE = [[0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, -2, 0, -2]]
SETTING_DEFAULTS = (1, 0, 1, False, "max", 2, 2)  # stride, padding, dilation, ReLU, pooling, its size and stride
RESIZE_INFO = "applied on Enter or when you leave the box; cells outside are kept"

# ----------------------------------------------------------------------------------------------
# the output cells one can choose

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
# HTML


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

        def clickable(i: int, j: int, f: int = f, pooled: bool = False) -> byhand.Look:
            return cell_label(f, i, j, pooled), "cz-sel" if (f, i, j, pooled) == chosen else "", ""

        parts = [f"<h4>Output {letter} = image ⋆ filter {letter}{html.escape(bias)}</h4>",
                 byhand.table(result.output[f], clickable),
                 f"<div class='cz-note'>{_sizes(n, k, s)}</div>"]
        if result.activated is not None:
            parts += ["<h4>after ReLU: max(0, x)</h4>", byhand.table(result.activated[f])]
        if result.pooled is not None:
            stride = f", stride {s.pool_stride}" if s.pool_stride != s.pool_size else ""
            parts += [f"<h4>{s.pool}-pool {s.pool_size}x{s.pool_size}{stride}</h4>",
                      byhand.table(result.pooled[f], partial(clickable, f=f, pooled=True))]
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

    def lit(i: int, j: int) -> byhand.Look:
        if (i, j) == won:
            return None, "cz-sel", ""
        return None, "cz-win" if top <= i < top + s.pool_size and left <= j < left + s.pool_size else "", ""

    stage = "after ReLU" if result.activated is not None else "the convolution's output"
    letter = LETTERS[f]
    winner_note = "; the winner is the darker cell" if won is not None else ""
    return (f"<div class='cz-card'><h4>Output {letter}, pooled row {row + 1}, column {col + 1} = "
            f"{html.escape(cv.format_number(value))}</h4>"
            f"<div class='cz-note'>{s.pool}-pooling window on output {letter} ({stage}){winner_note}</div>"
            f"{byhand.table(source, lit)}"
            f"{byhand.sum_box(text, 'expansion')}</div>")


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

    def lit(i: int, j: int) -> byhand.Look:
        if (i, j) in weights_at:
            return None, "cz-win", f"× {cv.format_number(weights_at[(i, j)])}"
        inside = s.padding <= i < s.padding + height and s.padding <= j < s.padding + width
        return None, "" if inside else "cz-pad", ""

    padding_note = " (grey: zero padding)" if s.padding else ""
    letter = LETTERS[f]
    return (f"<div class='cz-card'><h4>Output {letter}, row {row + 1}, column {col + 1} = "
            f"{html.escape(cv.format_number(expansion.value))}</h4>"
            f"<div class='cz-row'><div><div class='cz-note'>image{padding_note}: the window, each value × its filter "
            f"weight</div>{byhand.table(padded, lit)}</div><div class='cz-op'>⋆</div>"
            f"<div><div class='cz-note'>filter {letter}</div>{byhand.table(result.weights[f, 0])}</div></div>"
            f"{byhand.sum_box(expansion.text, 'expansion')}</div>")


def matrix_state(image: Any, *values: Any) -> tuple[str, list[str], str | None, str, str]:
    """``values``: the layer (``Layer.from_values``), then the chosen cell. Outputs (HTML), the output cells
    one can choose and the chosen one, that cell written out (HTML), and a message (empty when all is well)."""
    *layer, cell = values
    try:
        result = Layer.from_values(layer).compute(image)
        chosen = parse_cell(cell, result)
        message = (f"**Pooling does not fit:** {byhand.escaped(result.pool_error.rstrip('.'))}. The convolution's outputs "
                   "are shown without it." if result.pool_error else "")
        return (outputs_html(result, chosen), cell_choices(result), cell_label(*chosen), expansion_html(result, chosen),
                message)
    except ConvzooError as e:
        return "", [], None, "", byhand.message(e)


@readable_errors
def matrix_view(image: Any, *values: Any) -> tuple[str, Any, str, str]:
    """``matrix_state`` for the UI: the cell chooser as a Dropdown update, left alone after a mistake."""
    html_out, choices, chosen, expansion, message = matrix_state(image, *values)
    return html_out, gr.Dropdown(choices=choices, value=chosen) if choices else gr.Dropdown(), expansion, message


def pick_cell(event: CellClick, image: Any, *values: Any) -> tuple[str, Any, str, str]:
    """A clicked cell becomes the chosen one; a click beside the cells keeps the choice."""
    *layer, cell = values
    return matrix_view(image, *layer, event.cell or cell)


# ----------------------------------------------------------------------------------------------
# the view

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



def lecture_exercise() -> dict[str, Any]:
    """The lecture's exercise as the view starts: what "Back to the lecture's exercise" restores."""
    filters = [preset(DEFAULT_PRESETS[i % len(DEFAULT_PRESETS)], 3) for i in range(MAX_FILTERS)]
    return {"image": [[str(v) for v in row] for row in EXERCISE_IMAGE], "rows": 4, "cols": 4,
            "count": DEFAULT_FILTERS, "kernel": 3, "filters": filters, "biases": ["0"] * MAX_FILTERS,
            "presets": [DEFAULT_PRESETS[i % len(DEFAULT_PRESETS)] for i in range(MAX_FILTERS)],
            "settings": list(SETTING_DEFAULTS)}


def view() -> ByHand:
    """The view's components, the lecture's exercise in them; ``wire`` connects them once every view exists."""
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
    outputs = gr.HTML(first[0], css_template=byhand.CSS, js_on_load=byhand.CLICK_JS, elem_id="pg-outputs")
    cell = gr.Dropdown(first[1], value=first[2], label="Output cell written out", elem_id="pg-cell",
                       allow_custom_value=True)  # the API may name a cell of a grid it just resized
    expansion = gr.HTML(first[3], css_template=byhand.CSS, js_on_load=None, elem_id="pg-expansion")
    gr.Markdown(LECTURE_NOTES)
    kept_image = gr.State(remember(None, start["image"], MAX_SIDE))
    kept_filters = gr.State([remember(None, f, MAX_KERNEL, "filter") for f in start["filters"]])
    return ByHand(image, rows, cols, count, kernel, add, remove, columns, grids, presets, biases, settings, message,
                  outputs, cell, expansion, kept_image, kept_filters, restore)


def wire(v: ByHand) -> None:
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
        return gr.skip(), gr.skip(), byhand.message(e)


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
        return *[gr.skip() for _ in grids], gr.skip(), byhand.message(e)


@readable_errors
def load_preset(index: int, name: str, size: Any, kept: Any = None) -> tuple[Any, Any, str]:
    """A preset replaces its filter, the cells kept outside it too (they belonged to the filter it replaces)."""
    try:
        grid = preset(name, size)
        kept = list(kept) if isinstance(kept, list) and len(kept) == MAX_FILTERS else [None] * MAX_FILTERS
        kept[index] = remember(None, grid, MAX_KERNEL)
        return grid_value(grid), kept, ""
    except ConvzooError as e:
        return gr.skip(), gr.skip(), byhand.message(e)


def restore_exercise() -> tuple[Any, ...]:
    """Everything the by-hand view shows, as the lecture set it (``lecture_exercise``)."""
    start = lecture_exercise()
    return (grid_value(start["image"]), start["rows"], start["cols"], start["count"], start["kernel"],
            *[grid_value(f) for f in start["filters"]], *start["presets"], *start["biases"], *start["settings"],
            remember(None, start["image"], MAX_SIDE), [remember(None, f, MAX_KERNEL) for f in start["filters"]],
            "")


