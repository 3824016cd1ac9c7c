"""Convolution beyond the 2-D grid, by hand and exact: a 1-D signal, a graph, a volume of frames.

The same idea as ``convzoo.convolution`` (one small set of weights slid or shared everywhere), on the
three other shapes a lecture meets next:
- a 1-D signal, as in speech recognition, where filters slide along frequency and 3x1 max-pooling
  follows (Abdel-Hamid et al., 2014, "Convolutional Neural Networks for Speech Recognition");
- a graph, where "the window" of a node is the node and its neighbours: one layer of mean
  aggregation ``h'_v = w · mean(h_u for u in N(v) ∪ {v})`` (the GCN of Kipf & Welling, 2017, with
  row-normalised ``(A + I)``, which keeps every value a plain fraction);
- a video volume of frames x rows x columns, where the output size follows the same formula per axis.

The sums themselves are ``convzoo.convolution``'s one engine (``convolve`` and ``expand``, with
``axes=1`` and ``axes=3``); this module reads what a person typed, bounds it, says in the shape's own
words (along the signal, along depth) when a kernel does not fit, and does the graph's mean aggregation.
Values are ``fractions.Fraction`` throughout, so ``-1/2`` stays ``-1/2``. Positions are 0-based here; the
text a person reads counts from 1, and graph nodes are numbered from 1 as people number them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from convzoo import convolution as cv
from convzoo import sizes
from convzoo.sizes import Size
from convzoo.errors import BadInputError

# the by-hand limits are the page's, defined with their reasons in one place (convzoo.sizes; issue 22)
MAX_SIGNAL = sizes.SIGNAL_LENGTH
MAX_NODES = sizes.GRAPH_NODES
MAX_FRAMES = sizes.VOLUME_FRAMES
MAX_SIDE = sizes.VOLUME_SIDE
AXES = sizes.AXES
fmt = cv.format_number


# ----------------------------------------------------------------------------------------------
# reading what a person typed


def parse_numbers(text: Any, name: str, limit: int = sizes.TEXT_CHARACTERS) -> list[Fraction]:
    """``"1, 2, -1/2"`` (commas or spaces between values) as exact Fractions; at most ``limit`` characters."""
    if isinstance(text, (list, tuple)):
        words = list(text)
    else:
        typed = sizes.checked_text(text or "", name, limit)
        cleaned = re.sub(r"\s*/\s*", "/", typed.strip())  # "1 / 2" is one value, not three
        words = [w for w in re.split(r"[,;\s]+", cleaned) if w]
    if not words:
        raise BadInputError(f"the {name} is empty; type numbers separated by commas, such as 1, 2, -1/2")
    return [cv.parse_number(w, f"{name}, value {i + 1}") for i, w in enumerate(words)]


def _triple(value: Any, limits: tuple[Size, Size, Size], name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if np.isscalar(value) or value is None else tuple(value)
    if len(values) != 3:
        raise BadInputError(f"{name} needs one number per axis (frames, rows, columns), got {sizes.shown(value)}")
    a, b, c = (limit.parse(v) for v, limit in zip(values, limits))
    return a, b, c


Sum = cv.Expansion  # one output written out: its terms, value, and each term's place ``at`` in the padded input


def _fits(n: int, k: int, padding: int, dilation: int, where: str, fix: str) -> None:
    span = dilation * (k - 1) + 1
    if span > n + 2 * padding:
        spread = f" ({k} taps, {dilation} apart)" if dilation > 1 else ""
        pad = f" with padding {padding} on each side" if padding else ""
        raise BadInputError(f"the kernel spans {span}{spread} {where}, but the input has only {n + 2 * padding}"
                            f"{pad}; {fix}")


# ----------------------------------------------------------------------------------------------
# 1-D: a signal over frequency bands, a 3-tap kernel, 3x1 max-pooling


def _row(values: Any, name: str) -> np.ndarray:
    return np.array(parse_numbers(values, name), dtype=object)


SIGNAL_STRIDE = Size("stride", 1, sizes.SIGNAL_LENGTH)  # the view itself uses 1, as over frequency in the paper
SIGNAL_DILATION = Size("dilation", 1, sizes.SIGNAL_LENGTH)


def conv1d(signal: Any, kernel: Any, stride: int = 1, padding: int = 0, dilation: int = 1) -> list[Fraction]:
    """Cross-correlation as ``torch.nn.functional.conv1d`` on one channel."""
    x, w = _row(signal, "signal"), _row(kernel, "kernel")
    return list(cv.convolve(x, w, None, *_signal_settings(x, w, stride, padding, dilation), axes=1)[0])


def _signal_settings(x: np.ndarray, w: np.ndarray, stride: Any, padding: Any, dilation: Any) -> tuple[int, int, int]:
    """Stride, padding and dilation within the page's limits, and a kernel that fits, said along the signal."""
    stride, padding = SIGNAL_STRIDE.parse(stride), sizes.SIGNAL_PADDING.parse(padding)
    dilation = SIGNAL_DILATION.parse(dilation)
    if len(x) > MAX_SIGNAL:
        raise BadInputError(f"the signal has {len(x)} values; by hand, keep it to {MAX_SIGNAL} or fewer")
    if len(w) > len(x) + 2 * padding and dilation == 1:
        raise BadInputError(f"the kernel has {len(w)} values but the signal only {len(x)}"
                            f"{f' (with padding {padding} on each side, {len(x) + 2 * padding})' if padding else ''};"
                            " shorten the kernel or lengthen the signal")
    _fits(len(x), len(w), padding, dilation, "along the signal", "shorten the kernel or lengthen the signal")
    return stride, padding, dilation


@dataclass(frozen=True)
class Pooled:
    """One pooled value: which outputs its window covers, and the largest."""

    index: int
    covers: tuple[int, ...]  # positions in the convolution's output
    values: tuple[Fraction, ...]
    value: Fraction

    @property
    def text(self) -> str:
        outputs = ", ".join(str(i + 1) for i in self.covers)
        values = ", ".join(fmt(v) for v in self.values)
        return f"pooled {self.index + 1} = max of outputs {outputs} = max({values}) = {fmt(self.value)}"


def max_pool1d(values: Sequence[Any], size: int = 3, stride: int | None = None) -> list[Pooled]:
    """Max over windows of ``size`` (stride defaults to the window, as in torch); a short tail is dropped."""
    size = sizes.SIGNAL_POOL_SIZE.parse(size)
    stride = size if stride is None else sizes.SIGNAL_POOL_STRIDE.parse(stride)
    values = [cv.parse_number(v) for v in values]
    if size > len(values):
        raise BadInputError(f"the pooling window covers {size} values but the convolution gives only {len(values)}; "
                            "make the pooling window smaller or the signal longer")
    pooled = []
    for i in range((len(values) - size) // stride + 1):
        covers = tuple(range(i * stride, i * stride + size))
        window = tuple(values[j] for j in covers)
        pooled.append(Pooled(i, covers, window, max(window)))
    return pooled


@dataclass(frozen=True)
class SignalLayer:
    """A 1-D convolution followed by max-pooling, each output with the sum that made it."""

    signal: tuple[Fraction, ...]
    kernel: tuple[Fraction, ...]
    padding: int
    sums: tuple[Sum, ...]
    pool_size: int
    pool_stride: int
    pooled: tuple[Pooled, ...]

    @property
    def output(self) -> list[Fraction]:
        return [s.value for s in self.sums]

    @property
    def padded(self) -> list[Fraction]:
        zeros = [Fraction(0)] * self.padding
        return zeros + list(self.signal) + zeros


def signal_layer(signal: Any, kernel: Any, padding: Any = 0, pool_size: Any = 3,
                 pool_stride: Any = None) -> SignalLayer:
    """``signal`` and ``kernel`` as text (``"1, 2, -1/2"``) or numbers; stride 1, as over frequency in the paper."""
    x, w = _row(signal, "signal"), _row(kernel, "kernel")
    padding, size = sizes.SIGNAL_PADDING.parse(padding), sizes.SIGNAL_POOL_SIZE.parse(pool_size)
    stride = size if pool_stride in (None, "") else sizes.SIGNAL_POOL_STRIDE.parse(pool_stride)
    if len(x) > MAX_SIGNAL or len(w) > MAX_SIGNAL:  # before any sum: a few values are what a page shows
        which, n = ("signal", len(x)) if len(x) > MAX_SIGNAL else ("kernel", len(w))
        raise BadInputError(f"the {which} has {n} values; by hand, keep it to {MAX_SIGNAL} or fewer")
    _signal_settings(x, w, 1, padding, 1)
    outputs = cv.output_size(len(x), len(w), 1, padding)
    sums = [cv.expand(x, w, 0, i, padding=padding) for i in range(outputs)]
    pooled = max_pool1d([s.value for s in sums], size, stride)
    return SignalLayer(tuple(x), tuple(w), padding, tuple(sums), size, stride, tuple(pooled))


# ----------------------------------------------------------------------------------------------
# graphs: a node's window is the node and its neighbours


@dataclass(frozen=True)
class Graph:
    """An undirected graph on nodes 1..``nodes``; ``edges`` are pairs ``(u, v)`` with ``u < v``."""

    nodes: int
    edges: frozenset[tuple[int, int]]

    def neighbours(self, v: int) -> list[int]:
        return sorted({b if a == v else a for a, b in self.edges if v in (a, b)})

    def fed_by(self, v: int) -> list[int]:
        """The nodes averaged into ``v``: itself and its neighbours, in number order."""
        return sorted({v, *self.neighbours(v)})


def _node(word: str, nodes: int, line: int, text: str) -> int:
    if not re.fullmatch(r"\d+", word):
        raise BadInputError(f"adjacency line {line} ({text!r}): {word!r} is not a node number; nodes are "
                            f"numbered 1 to {nodes}")
    v = int(word)
    if not 1 <= v <= nodes:
        raise BadInputError(f"adjacency line {line} ({text!r}) names node {v}, but there are only {nodes} nodes "
                            f"(one per feature, numbered 1 to {nodes}); add a feature or remove the edge")
    return v


def parse_graph(text: Any, nodes: int) -> Graph:
    """One line per node, ``"2: 1, 3"``: node 2 is joined to 1 and 3. An edge written on one side is enough."""
    if not 1 <= nodes <= MAX_NODES:
        raise BadInputError(f"a graph by hand has 1 to {MAX_NODES} nodes (one feature each), got {nodes}")
    edges = set()
    for line, raw in enumerate(str(text or "").splitlines(), start=1):
        if not raw.strip():
            continue
        if raw.count(":") != 1:
            raise BadInputError(f"adjacency line {line} ({raw.strip()!r}): write a node, a colon and its "
                                "neighbours, such as 2: 1, 3")
        head, tail = raw.split(":")
        v = _node(head.strip(), nodes, line, raw.strip())
        for word in (w for w in re.split(r"[,;\s]+", tail) if w):
            u = _node(word, nodes, line, raw.strip())
            if u == v:
                raise BadInputError(f"adjacency line {line} ({raw.strip()!r}) makes node {v} its own neighbour; "
                                    "leave it out, every node already counts itself in the mean")
            edges.add((min(u, v), max(u, v)))
    return Graph(nodes, frozenset(edges))


@dataclass(frozen=True)
class Aggregation:
    """One node's new value: the mean of its own and its neighbours' features, times the weight."""

    node: int
    fed_by: tuple[int, ...]
    values: tuple[Fraction, ...]  # the features of ``fed_by``, same order
    weight: Fraction
    value: Fraction

    @property
    def text(self) -> str:
        scale = "" if self.weight == 1 else f"{fmt(self.weight)} × "
        total = " + ".join(fmt(v) for v in self.values)
        return f"node {self.node}: {scale}({total}) / {len(self.values)} = {fmt(self.value)}"


def aggregate(graph: Graph, features: Sequence[Any], weight: Any = 1) -> list[Aggregation]:
    """One layer of mean aggregation, ``h'_v = w · mean(h_u for u in N(v) ∪ {v})``, for every node."""
    h = [cv.parse_number(f, f"feature of node {i + 1}") for i, f in enumerate(features)]
    if len(h) != graph.nodes:
        raise BadInputError(f"the graph has {graph.nodes} nodes but {len(h)} features were given; give one per node")
    w = cv.parse_number(weight, "weight")
    out = []
    for v in range(1, graph.nodes + 1):
        fed_by = graph.fed_by(v)
        values = tuple(h[u - 1] for u in fed_by)
        out.append(Aggregation(v, tuple(fed_by), values, w, w * sum(values, Fraction(0)) / len(values)))
    return out


GRAPHS: dict[str, tuple[str, str]] = {  # name: (adjacency, node features)
    "path": ("1: 2\n2: 3\n3: 4\n4: 5", "3, 1, 1/2, 2, 0"),
    "star": ("1: 2, 3, 4, 5", "0, 1, 2, 3, 4"),
    "ring": ("1: 2\n2: 3\n3: 4\n4: 5\n5: 6\n6: 1", "1, 0, 0, 0, 0, 0"),
    # heavy atom bonds and hydrogens of CH3-OH, each atom's feature its atomic number
    "molecule (methanol)": ("1: 2, 3, 4, 5\n2: 6", "6, 8, 1, 1, 1, 1"),
}


def graph_layer(adjacency: Any, features: Any, weight: Any = 1) -> tuple[Graph, list[Fraction], list[Aggregation]]:
    """Text in, as the tab takes it: the graph, its features, and every node's aggregation."""
    adjacency = sizes.checked_text(adjacency, "list of neighbours")
    h = parse_numbers(features, "node features")
    if len(h) > MAX_NODES:
        raise BadInputError(f"{len(h)} features means {len(h)} nodes; by hand, keep the graph to {MAX_NODES}")
    graph = parse_graph(adjacency, len(h))
    return graph, h, aggregate(graph, h, weight if weight not in (None, "") else 1)


# ----------------------------------------------------------------------------------------------
# 3-D: frames x rows x columns, and the output size per axis


def parse_volume(text: Any, name: str) -> np.ndarray:
    """Frames separated by a blank line, rows by a line break, values by commas or spaces: ``(D, H, W)``."""
    typed = sizes.checked_text(text or "", name, sizes.VOLUME_CHARACTERS)
    frames = [block for block in re.split(r"\n\s*\n", typed.strip()) if block.strip()]
    if not frames:
        raise BadInputError(f"the {name} is empty; type one frame per block of rows, with a blank line between frames")
    rows = max(len(block.strip().splitlines()) for block in frames)
    if len(frames) > MAX_FRAMES or rows > MAX_SIDE:  # counted before a value is parsed
        raise BadInputError(f"the {name} has {len(frames)} frame(s) of up to {rows} rows; by hand, keep it to "
                            f"{MAX_FRAMES} frames of at most {MAX_SIDE}x{MAX_SIDE}")
    grids = [[parse_numbers(line, f"{name}, frame {f + 1}, row {r + 1}")
              for r, line in enumerate(block.strip().splitlines())] for f, block in enumerate(frames)]
    rows, columns = {len(g) for g in grids}, {len(row) for g in grids for row in g}
    if len(rows) > 1 or len(columns) > 1:
        raise BadInputError(f"the {name} is ragged (frames of {'/'.join(map(str, sorted(rows)))} rows, rows of "
                            f"{'/'.join(map(str, sorted(columns)))} values); every frame needs the same number of "
                            "rows, and every row the same number of values")
    return np.array(grids, dtype=object)


def format_volume(volume: np.ndarray) -> str:
    return "\n\n".join("\n".join(", ".join(fmt(v) for v in row) for row in frame) for frame in volume)


def output_sizes(shape: Sequence[int], kernel: Sequence[int], stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1) -> tuple[int, int, int]:
    """``floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`` per axis, as ``conv3d`` sizes it."""
    s, p, d = settings3d(stride, padding, dilation)
    out = []
    for axis, n, k, si, pi, di in zip(AXES, shape, kernel, s, p, d):
        _fits(n, k, pi, di, f"along {axis}", f"make the kernel smaller along {axis.split()[0]}, or add padding")
        out.append(cv.output_size(n, k, si, pi, di))
    depth, height, width = out
    return depth, height, width


def settings3d(stride: Any, padding: Any, dilation: Any) -> tuple[tuple[int, ...], ...]:
    """Stride, padding and dilation per axis, each within the page's limits (``sizes``)."""
    return (_triple(stride, sizes.VOLUME_STRIDE, "stride"), _triple(padding, sizes.VOLUME_PADDING, "padding"),
            _triple(dilation, sizes.VOLUME_DILATION, "dilation"))


def size_formulas(shape: Sequence[int], kernel: Sequence[int], stride: Any = 1, padding: Any = 0,
                  dilation: Any = 1) -> list[tuple[str, str]]:
    """``(axis, "floor((2 + 2·0 - 1·(2 - 1) - 1) / 1) + 1 = 1")`` for depth, height and width."""
    output_sizes(shape, kernel, stride, padding, dilation)  # the axis-named message first, if it does not fit
    s, p, d = settings3d(stride, padding, dilation)
    return [(axis, cv.output_size_formula(n, k, si, pi, di))
            for axis, n, k, si, pi, di in zip(AXES, shape, kernel, s, p, d)]


def _checked_volume(volume: np.ndarray, what: str) -> np.ndarray:
    volume = np.asarray(volume, dtype=object)
    if volume.ndim != 3:
        raise BadInputError(f"the {what} needs frames x rows x columns, got shape {volume.shape}")
    if volume.shape[0] > MAX_FRAMES or max(volume.shape[1:]) > MAX_SIDE:
        raise BadInputError(f"the {what} is {'x'.join(map(str, volume.shape))}; by hand, keep it to {MAX_FRAMES} "
                            f"frames of at most {MAX_SIDE}x{MAX_SIDE}")
    return cv.exact(volume)


def _volume(volume: Any, kernel: Any, stride: Any, padding: Any, dilation: Any) -> tuple[np.ndarray, ...]:
    """Input and kernel within the page's limits and the settings per axis, refused along a named axis when
    the kernel does not fit, before the engine sees them."""
    x, w = _checked_volume(volume, "input"), _checked_volume(kernel, "kernel")
    output_sizes(x.shape, w.shape, stride, padding, dilation)
    return x, w, *settings3d(stride, padding, dilation)


def conv3d(volume: Any, kernel: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> np.ndarray:
    """Cross-correlation as ``torch.nn.functional.conv3d`` on one channel: ``(D', H', W')`` exact."""
    x, w, s, p, d = _volume(volume, kernel, stride, padding, dilation)
    return cv.convolve(x, w, None, s, p, d, axes=3)[0]


def volume_sum(volume: Any, kernel: Any, index: Sequence[int], stride: Any = 1, padding: Any = 0,
               dilation: Any = 1) -> Sum:
    """The terms behind ``conv3d(...)[index]``, frame by frame, row by row."""
    x, w, s, p, d = _volume(volume, kernel, stride, padding, dilation)
    return cv.expand(x, w, 0, *index, stride=s, padding=p, dilation=d)


def _line(k: int) -> list[Fraction]:
    """``[-1/2, 1, -1/2]`` at k=3: the lecture's vertical-line row, centre against the sides, summing to zero."""
    side = Fraction(-1, k - 1) if k > 1 else Fraction(0)
    return [Fraction(1) if j == k // 2 else side for j in range(k)]


def _motion(d: int, h: int, w: int) -> np.ndarray:
    frames = [[[Fraction(0)] * w for _ in range(h)] for _ in range(d)]
    if d > 1:  # the last frame minus the first: what changed
        frames[0] = [[Fraction(-1)] * w for _ in range(h)]
        frames[-1] = [[Fraction(1)] * w for _ in range(h)]
    return np.array(frames, dtype=object)


def _turning(d: int, h: int, w: int) -> np.ndarray:
    """The lecture's filter A (a vertical line) in even frames, B (a horizontal line) in odd ones: a pattern
    in time as well as space, a vertical line that turns horizontal."""
    vertical = [_line(w)] * h
    horizontal = [[v] * w for v in _line(h)]
    return np.array([vertical if t % 2 == 0 else horizontal for t in range(d)], dtype=object)


KERNELS = {
    "vertical line, then horizontal": _turning,
    "vertical line in every frame": lambda d, h, w: np.array([[_line(w)] * h] * d, dtype=object),
    "frame difference (motion)": _motion,
    "average": lambda d, h, w: np.full((d, h, w), Fraction(1, d * h * w), dtype=object),
}


def volume_kernel(name: str, depth: Any, height: Any, width: Any) -> np.ndarray:
    shape = tuple(size.parse(n) for size, n in zip(sizes.KERNEL_SIZE, (depth, height, width)))
    if name not in KERNELS:
        raise BadInputError(f"no kernel preset named {name!r}; choose one of: {', '.join(KERNELS)}")
    return KERNELS[name](*shape)


# the lecture's 4x4 image, then the same image a column to the right: two frames of a moving picture
VOLUME = np.array([[[0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, -2, 0, -2]],
                   [[0, 0, 1, 0], [0, 0, 1, 0], [0, 1, 1, 1], [0, 0, -2, 0]]], dtype=object)
SIGNAL = "0, 1, 3, 1, 0, 1/2, 2, 1/2, 0, -1, 1"  # say, log energies in 11 mel bands: two formant peaks
SIGNAL_KERNEL = "-1/2, 1, -1/2"  # the lecture's line detector, along frequency: a peak between two lower bands
