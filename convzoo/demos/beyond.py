"""The filter playground beyond the 2-D grid: a 1-D signal, a graph and a volume of frames, by hand.

Three nested tabs of the playground, each the by-hand exercise's shape: inputs typed as text, outputs
as exact fractions, and a click on any output writes out the sum that made it and lights up what fed it.
The arithmetic is ``convzoo.beyond_grid``; the widget (tables, clicks, the sentence beside the page on a
mistake) is ``convzoo.demos.byhand``, shared with the 2-D exercise; this module only draws each shape.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import gradio as gr
import numpy as np

from convzoo import beyond_grid as bg
from convzoo import sizes
from convzoo.demos import byhand
from convzoo.demos.common import readable_errors, size_box
from convzoo.errors import ConvzooError

fmt = bg.fmt
td = byhand.td


def _sum_box(text: str) -> str:
    return byhand.sum_box(text, "beyond-sum")


def _chosen(chosen: Any, choices: list[str]) -> str:
    """The chosen output, or the first one when it no longer exists (the signal got shorter, say)."""
    return chosen if chosen in choices else choices[0]


def _view(state: Callable[..., tuple[str, list[str], str]]) -> Callable[..., tuple[Any, Any, str]]:
    """A ``*_state`` function for the UI: the page, the output chooser as a Dropdown update and the message box;
    a mistake is a sentence in the box (``byhand.message``) and the last good page and choice stay."""

    @readable_errors
    def view(*values: Any) -> tuple[Any, Any, str]:
        try:
            page, choices, chosen = state(*values)
        except ConvzooError as e:
            return gr.skip(), gr.skip(), byhand.message(e)
        return page, gr.Dropdown(choices=choices, value=chosen), ""

    view.__name__ = state.__name__.replace("_state", "_view")
    return view


def _pick(view: Callable[..., tuple[Any, Any, str]]) -> Callable[..., tuple[Any, Any, str]]:
    """A clicked output becomes the chosen one (the chooser is the last input); a stray click keeps it."""

    def pick(event: byhand.CellClick, *values: Any) -> tuple[Any, Any, str]:
        *inputs, chosen = values
        return view(*inputs, event.cell or chosen)

    return pick


def _wire(inputs: Sequence[gr.components.Component], chosen: gr.Dropdown, page: gr.HTML, said: gr.Markdown,
          state: Callable[..., tuple[str, list[str], str]], api_name: str) -> None:
    """Typing is read when a box is left or Enter is pressed, so a half-typed ``-1/`` is not an error."""
    view = _view(state)
    triggers = [e for c in inputs for e in ((c.submit, c.blur) if isinstance(c, gr.Textbox) else (c.change,))]
    gr.on([*triggers, chosen.input], view, [*inputs, chosen], [page, chosen, said], api_name=api_name,
          trigger_mode="always_last")
    page.click(_pick(view), [*inputs, chosen], [page, chosen, said], api_visibility="private")


def _page(first: str, name: str) -> gr.HTML:
    return gr.HTML(first, css_template=byhand.CSS, js_on_load=byhand.CLICK_JS, elem_id=f"beyond-{name}-view")


def _message(name: str) -> gr.Markdown:
    return gr.Markdown("", elem_id=f"beyond-{name}-message")


def _first(state: Callable[..., tuple[str, list[str], str]], *values: Any) -> tuple[str, list[str], str]:
    return state(*values, None)


# ----------------------------------------------------------------------------------------------
# 1-D: a signal

SIGNAL_NOTES = """
### 1-D convolution, as in speech recognition
A spectrogram frame is a row of energies, one per frequency band. Abdel-Hamid et al. (2014) slide small
filters **along frequency** (a 1-D convolution), then max-pool 3 neighbouring outputs into one, so that a
formant shifted by a band or two, one speaker to the next, gives nearly the same pooled value. Here one 3-tap
kernel, the lecture's line detector `-1/2, 1, -1/2`, answers where a band is stronger than its neighbours.
**Click any output or pooled value** to see how it is made. Edit the numbers (press Enter or leave the box).
"""


def signal_state(signal: Any, kernel: Any, padding: Any, pool_size: Any, pool_stride: Any,
                 chosen: Any) -> tuple[str, list[str], str]:
    """The exercise as HTML, the outputs one can choose, and the chosen one."""
    layer = bg.signal_layer(signal, kernel, padding, pool_size, pool_stride)
    choices = [f"output {i + 1}" for i in range(len(layer.sums))]
    choices += [f"pooled {j + 1}" for j in range(len(layer.pooled))]
    chosen = _chosen(chosen, choices)
    return signal_html(layer, chosen), choices, chosen


def signal_html(layer: bg.SignalLayer, chosen: str) -> str:
    kind, number = chosen.split()
    index = int(number) - 1
    taps: dict[int, Fraction] = {}
    covered: set[int] = set()
    if kind == "output":
        one = layer.sums[index]
        taps = {position: w for (position,), (_, w) in zip(one.at, one.terms)}
        text = f"output {index + 1} = {one.text}"
    else:
        pooled = layer.pooled[index]
        covered = set(pooled.covers)
        text = pooled.text
    padded, p = layer.padded, layer.padding
    centre = (len(layer.kernel) - 1) // 2  # each output sits under the middle of its window

    def placed(values: dict[int, str]) -> str:
        return "".join(values.get(c, "<td class='cz-empty'></td>") for c in range(len(padded)))

    signal = {c: td(v, cls="cz-win" if c in taps else ("cz-pad" if not p <= c < len(padded) - p else ""),
                     note=f"× {fmt(taps[c])}" if c in taps else "") for c, v in enumerate(padded)}
    outputs = {i + centre: td(s.value, f"output {i + 1}",
                               "cz-sel" if chosen == f"output {i + 1}" else ("cz-win" if i in covered else ""))
               for i, s in enumerate(layer.sums)}
    pooled_cells = {q.covers[0] + (len(q.covers) - 1) // 2 + centre:
                    td(q.value, f"pooled {q.index + 1}", "cz-sel" if chosen == f"pooled {q.index + 1}" else "")
                    for q in layer.pooled}
    pool_title = f"max-pool {layer.pool_size}" + (f", stride {layer.pool_stride}"
                                                  if layer.pool_stride != layer.pool_size else "")
    rows = [("signal" + (" (grey: padding)" if p else ""), placed(signal)),
            (f"convolution ({len(layer.sums)})", placed(outputs)),
            (f"{pool_title} ({len(layer.pooled)})", placed(pooled_cells))]
    table = "".join(f"<tr><th>{html.escape(title)}</th>{cells}</tr>" for title, cells in rows)
    kernel = byhand.table([layer.kernel], testid="beyond-kernel")
    return (f"<div class='cz-card'><h4>kernel</h4>{kernel}<div class='cz-note'>output size: "
            f"{html.escape(bg.cv.output_size_formula(len(layer.signal), len(layer.kernel), 1, p))}</div>"
            f"<table class='cz-grid'>{table}</table>{_sum_box(text)}</div>")


def signal_tab() -> None:
    with gr.Tab("1D signal", id="beyond-signal"):
        gr.Markdown(SIGNAL_NOTES)
        with gr.Row():
            signal = gr.Textbox(bg.SIGNAL, label=f"Signal (one value per frequency band, at most {bg.MAX_SIGNAL})",
                                max_lines=1, scale=3, max_length=sizes.TEXT_CHARACTERS, elem_id="beyond-signal-input")
            kernel = gr.Textbox(bg.SIGNAL_KERNEL, label="Kernel", max_lines=1, scale=1,
                                max_length=sizes.TEXT_CHARACTERS,
                                elem_id="beyond-signal-kernel")
        with gr.Row():
            padding = size_box(sizes.SIGNAL_PADDING, 0, "Padding", min_width=80, elem_id="beyond-signal-padding")
            size = size_box(sizes.SIGNAL_POOL_SIZE, 3, "Pooling size", min_width=80,
                            elem_id="beyond-signal-pool-size")
            stride = size_box(sizes.SIGNAL_POOL_STRIDE, 3, "Pooling stride", min_width=80,
                              elem_id="beyond-signal-pool-stride")
        page, choices, chosen = _first(signal_state, bg.SIGNAL, bg.SIGNAL_KERNEL, 0, 3, 3)
        view = _page(page, "signal")
        choice = gr.Dropdown(choices, value=chosen, label="Value written out", allow_custom_value=True,
                             elem_id="beyond-signal-choice")
        said = _message("signal")
    _wire([signal, kernel, padding, size, stride], choice, view, said, signal_state, "beyond_signal")


# ----------------------------------------------------------------------------------------------
# graphs

GRAPH_NOTES = """
### Graph convolution
On a graph there is no grid to slide a window on, so a node's window is **the node and its neighbours**. One
layer of mean aggregation gives every node the mean of those features, times one shared weight:
h'(v) = w · mean(h(u) for u in N(v) ∪ {v}), that is ((A + I) h / degree) · w, the propagation rule of
Kipf & Welling (2017) with a plain mean. The same weight everywhere, as one filter serves a whole image.
Write one line per node, `2: 1, 3` joins node 2 to nodes 1 and 3. **Click a node or its new value.**
"""
GRAPH_SIDE = 320


def graph_state(adjacency: Any, features: Any, weight: Any, chosen: Any) -> tuple[str, list[str], str]:
    graph, h, aggregations = bg.graph_layer(adjacency, features, weight)
    choices = [f"node {v}" for v in range(1, graph.nodes + 1)]
    chosen = _chosen(chosen, choices)
    return graph_html(graph, h, aggregations, int(chosen.split()[1])), choices, chosen


def _positions(nodes: int) -> list[tuple[float, float]]:
    """On a circle, node 1 at the top, clockwise; one node alone in the middle."""
    middle, radius = GRAPH_SIDE / 2, GRAPH_SIDE / 2 - 56
    if nodes == 1:
        return [(middle, middle)]
    return [(middle + radius * math.sin(2 * math.pi * i / nodes), middle - radius * math.cos(2 * math.pi * i / nodes))
            for i in range(nodes)]


def drawing(graph: bg.Graph, h: Sequence[Fraction], node: int) -> str:
    """The graph as SVG: the chosen node, the nodes it averages and the edges they came along, lit up."""
    at = _positions(graph.nodes)
    fed_by = set(graph.fed_by(node))
    middle = GRAPH_SIDE / 2
    parts = []
    for a, b in sorted(graph.edges):
        lit = " class='cz-feed'" if node in (a, b) else ""
        (x1, y1), (x2, y2) = at[a - 1], at[b - 1]
        parts.append(f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}'{lit}/>")
    for v, (x, y) in enumerate(at, start=1):
        cls = "cz-sel" if v == node else ("cz-feed" if v in fed_by else "")
        dx, dy = (x - middle, y - middle)
        norm = math.hypot(dx, dy) or 1.0
        lx, ly = (x + 34 * dx / norm, y + 34 * dy / norm) if graph.nodes > 1 else (x, y + 34)
        parts.append(f"<g data-cell='node {v}' class='{cls}'><circle cx='{x:.1f}' cy='{y:.1f}' r='18'/>"
                     f"<text x='{x:.1f}' y='{y:.1f}'>{v}</text>"
                     f"<text class='cz-h' x='{lx:.1f}' y='{ly:.1f}'>h={html.escape(fmt(h[v - 1]))}</text></g>")
    return (f"<svg class='cz-graph' data-testid='beyond-graph-drawing' width='{GRAPH_SIDE}' height='{GRAPH_SIDE}' "
            f"viewBox='0 0 {GRAPH_SIDE} {GRAPH_SIDE}'>{''.join(parts)}</svg>")


def graph_html(graph: bg.Graph, h: Sequence[Fraction], aggregations: Sequence[bg.Aggregation], node: int) -> str:
    one = aggregations[node - 1]
    rows = "".join(f"<tr><th>node {a.node}</th>{td(h[a.node - 1], cls='cz-win' if a.node in one.fed_by else '')}"
                   f"{td(a.value, f'node {a.node}', 'cz-sel' if a.node == node else '')}</tr>" for a in aggregations)
    neighbours = [u for u in one.fed_by if u != node]
    said = (f"node {node} itself and its neighbours {', '.join(map(str, neighbours))}" if neighbours
            else f"node {node} alone (it has no neighbours)")
    return (f"<div class='cz-row'><div class='cz-card'>{drawing(graph, h, node)}</div>"
            f"<div class='cz-card'><h4>h → h' (one layer)</h4><table class='cz-grid'><tr><th></th><th>h</th>"
            f"<th>h'</th></tr>{rows}</table><div class='cz-note'>fed by {html.escape(said)}</div>"
            f"{_sum_box(one.text)}</div></div>")


def load_graph(name: str) -> tuple[str, str]:
    if name not in bg.GRAPHS:
        raise gr.Error(f"no graph named {sizes.shown(name)}; choose one of: {', '.join(bg.GRAPHS)}")
    return bg.GRAPHS[name]


def graph_tab() -> None:
    first = next(iter(bg.GRAPHS))
    with gr.Tab("Graph", id="beyond-graph"):
        gr.Markdown(GRAPH_NOTES)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                preset = gr.Dropdown(list(bg.GRAPHS), value=first, label="Graph", elem_id="beyond-graph-preset")
                adjacency = gr.Textbox(bg.GRAPHS[first][0], label="Neighbours (one line per node)", lines=5,
                                       max_length=sizes.TEXT_CHARACTERS, elem_id="beyond-graph-adjacency")
                features = gr.Textbox(bg.GRAPHS[first][1],
                                      label=f"Node features h (one per node, in order; at most {bg.MAX_NODES} nodes)",
                                      max_lines=1, max_length=sizes.TEXT_CHARACTERS, elem_id="beyond-graph-features")
                weight = gr.Textbox("1", label="Weight w", max_lines=1, max_length=64, elem_id="beyond-graph-weight")
            with gr.Column(scale=3):
                page, choices, chosen = _first(graph_state, *bg.GRAPHS[first], "1")
                view = _page(page, "graph")
                choice = gr.Dropdown(choices, value=chosen, label="Node written out", allow_custom_value=True,
                                     elem_id="beyond-graph-choice")
                said = _message("graph")
    _wire([adjacency, features, weight], choice, view, said, graph_state, "beyond_graph")
    # .then: the new graph is drawn once both of its boxes hold it, not twice from half of it
    preset.input(load_graph, preset, [adjacency, features], api_name="beyond_graph_preset").then(
        _view(graph_state), [adjacency, features, weight, choice], [view, choice, said], api_visibility="private",
        trigger_mode="always_last")


# ----------------------------------------------------------------------------------------------
# 3-D: sizes per axis

VOLUME_NOTES = """
### The output size, per axis, on two frames
A video clip adds an axis: frames × rows × columns. A 3-D kernel spans a few frames as well as rows and
columns (C3D, Tran et al., 2015), and each axis follows the same formula on its own:
**out = floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1**. Here the input is the lecture's
image and the same image a column to the right, 2 × 4 × 4; a 2 × 3 × 3 kernel covers both frames, so the
output has one frame. Change the kernel, stride or padding per axis and watch the sizes; **click an output
value** to see its sum written out over both frames.
"""
AXIS_KEYS = ("d", "h", "w")


def volume_state(volume: Any, kernel: Any, stride_d: Any, stride_h: Any, stride_w: Any, padding_d: Any,
                 padding_h: Any, padding_w: Any, dilation_d: Any, dilation_h: Any, dilation_w: Any,
                 chosen: Any) -> tuple[str, list[str], str]:
    """Stride, padding and dilation come per axis: frames (d), rows (h), columns (w)."""
    stride, padding, dilation = bg.settings3d((stride_d, stride_h, stride_w), (padding_d, padding_h, padding_w),
                                              (dilation_d, dilation_h, dilation_w))  # bounded before any work
    x, w = bg.parse_volume(volume, "input"), bg.parse_volume(kernel, "kernel")
    out = bg.conv3d(x, w, stride, padding, dilation)
    choices = [volume_label(index) for index in np.ndindex(out.shape)]
    chosen = _chosen(chosen, choices)
    index = tuple(int(n) - 1 for n in re.findall(r"\d+", chosen))
    one = bg.volume_sum(x, w, index, stride, padding, dilation)
    sizes = bg.size_formulas(x.shape, w.shape, stride, padding, dilation)
    return volume_html(x, w, out, one, index, sizes, padding), choices, chosen


def volume_label(index: Sequence[int]) -> str:
    return f"frame {index[0] + 1}, row {index[1] + 1}, column {index[2] + 1}"


def _frames(volume: np.ndarray, look: Callable[[int, int, int], byhand.Look], title: str) -> str:
    """One small table per frame; ``look(d, r, c)`` says how each value shows (``byhand.table``)."""
    tables = [f"<div><div class='cz-note'>{html.escape(title)} {d + 1}</div>"
              f"{byhand.table(frame, lambda r, c, d=d: look(d, r, c))}</div>" for d, frame in enumerate(volume)]
    return f"<div class='cz-row'>{''.join(tables)}</div>"


def volume_html(x: np.ndarray, w: np.ndarray, out: np.ndarray, one: bg.Sum, index: tuple[int, ...],
                sizes: list[tuple[str, str]], padding: Sequence[Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(axis)}</th><td>{html.escape(formula)}</td></tr>" for axis, formula in sizes)
    shape = " × ".join(str(n) for n in out.shape)
    sizes_table = (f"<table class='cz-sizes' data-testid='beyond-sizes'><tr><th>axis</th><th>floor((in + 2·padding - "
                   f"dilation·(kernel - 1) - 1) / stride) + 1</th></tr>{rows}</table>")
    outputs = _frames(out, lambda d, r, c: (volume_label((d, r, c)), "cz-sel" if (d, r, c) == index else "", ""),
                      "output frame")
    p = list(padding)
    padded = bg.cv.pad(x, p, axes=3)
    weights = {position: weight for position, (_, weight) in zip(one.at, one.terms)}

    def window(d: int, r: int, c: int) -> tuple[None, str, str]:
        if (d, r, c) in weights:
            return None, "cz-win", f"× {fmt(weights[(d, r, c)])}"
        inside = all(pi <= i < pi + n for i, pi, n in zip((d, r, c), p, x.shape))
        return None, "" if inside else "cz-pad", ""

    return (f"<div class='cz-row'><div class='cz-card'><h4>sizes: {' × '.join(map(str, x.shape))} input, "
            f"{' × '.join(map(str, w.shape))} kernel → {shape} output</h4>{sizes_table}</div>"
            f"<div class='cz-card' data-testid='beyond-volume-outputs'><h4>output (frames × rows × columns)</h4>"
            f"{outputs}</div></div>"
            f"<div class='cz-card'><h4>{html.escape(volume_label(index))} = {html.escape(fmt(one.value))}</h4>"
            f"<div class='cz-row'><div>{_frames(padded, window, 'input frame')}</div>"
            f"<div>{_frames(w, byhand.PLAIN, 'kernel frame')}</div></div>{_sum_box(one.text)}</div>")


@readable_errors
def make_kernel(name: str, depth: Any, height: Any, width: Any) -> str:
    return bg.format_volume(bg.volume_kernel(name, depth, height, width))


@readable_errors
def resize_kernel(name: str, depth: Any, height: Any, width: Any, kernel: Any) -> Any:
    """The preset at the new size, or the typed kernel left as it is when it already has that size."""
    shape = tuple(size.parse(n) for size, n in zip(sizes.KERNEL_SIZE, (depth, height, width)))
    try:
        if bg.parse_volume(kernel, "kernel").shape == shape:
            return gr.skip()
    except bg.BadInputError:  # a kernel that does not parse is replaced by one that does
        pass
    return make_kernel(name, *shape)


def _per_axis(label: str, values: Sequence[int], limits: Sequence[sizes.Size]) -> list[gr.Number]:
    return [size_box(limit, value, f"{label.capitalize()} ({axis.split()[0]})", min_width=80,
                     elem_id=f"beyond-volume-{label}-{a}")
            for value, axis, a, limit in zip(values, bg.AXES, AXIS_KEYS, limits)]


def volume_tab() -> None:
    first = next(iter(bg.KERNELS))
    kernel_text = make_kernel(first, 2, 3, 3)
    with gr.Tab("3D sizes", id="beyond-volume"):
        gr.Markdown(VOLUME_NOTES)
        with gr.Row():
            volume = gr.Textbox(bg.format_volume(bg.VOLUME), lines=9, max_lines=40, max_length=sizes.VOLUME_CHARACTERS,
                                label=f"Input: frames separated by a blank line (at most {bg.MAX_FRAMES} frames of "
                                      f"{bg.MAX_SIDE}x{bg.MAX_SIDE})", elem_id="beyond-volume-input")
            with gr.Column():
                preset = gr.Dropdown(list(bg.KERNELS), value=first, label="Kernel preset",
                                     elem_id="beyond-volume-preset")
                with gr.Row():
                    shape = _per_axis("kernel", (2, 3, 3), sizes.KERNEL_SIZE)
                kernel = gr.Textbox(kernel_text, label="Kernel: frames separated by a blank line", lines=7,
                                    max_lines=40, max_length=sizes.VOLUME_CHARACTERS, elem_id="beyond-volume-kernel")
        with gr.Row():
            stride = _per_axis("stride", (1, 1, 1), sizes.VOLUME_STRIDE)
            padding = _per_axis("padding", (0, 0, 0), sizes.VOLUME_PADDING)
            dilation = _per_axis("dilation", (1, 1, 1), sizes.VOLUME_DILATION)
        page, choices, chosen = _first(volume_state, bg.format_volume(bg.VOLUME), kernel_text, 1, 1, 1, 0, 0, 0, 1, 1,
                                       1)
        view = _page(page, "volume")
        choice = gr.Dropdown(choices, value=chosen, label="Output written out", allow_custom_value=True,
                             elem_id="beyond-volume-choice")
        said = _message("volume")
    _wire([volume, kernel, *stride, *padding, *dilation], choice, view, said, volume_state, "beyond_volume")
    # always_last: a second size typed while the first redraw runs must redraw again, not be dropped ("once", the
    # default, dropped it and left the page showing the kernel before the change)
    then_view = dict(fn=_view(volume_state), inputs=[volume, kernel, *stride, *padding, *dilation, choice],
                     outputs=[view, choice, said], api_visibility="private", trigger_mode="always_last")
    preset.input(make_kernel, [preset, *shape], kernel, api_name="beyond_volume_kernel").then(**then_view)
    # a kernel size applies once typed (Enter or leaving the box), and only when it changes the kernel's shape: a
    # new size draws the preset again, so passing through a box must not replace a kernel typed by hand (issue 22)
    gr.on([e for n in shape for e in (n.submit, n.blur)], resize_kernel, [preset, *shape, kernel], kernel,
          api_name="beyond_volume_resize", trigger_mode="always_last").then(**then_view)
