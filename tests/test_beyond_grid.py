"""Convolution beyond the grid, by hand: 1-D, graphs and 3-D sizes, checked against torch and dense numpy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convzoo import beyond_grid as bg
from convzoo.errors import BadInputError

pytestmark = pytest.mark.unit  # torch-free, no servers or processes: `make test-fast`

# multiples of 1/4 in [-2, 2]: their sums of products are exact in float64, so torch can be compared with ==
quarters = st.integers(-8, 8).map(lambda n: Fraction(n, 4))
CHECKS = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def F():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch.nn.functional


def tensor(values, *leading):
    import torch

    return torch.tensor(np.asarray(values, dtype=np.float64)).reshape(*leading, *np.shape(values))


def as_text(values) -> str:
    return ", ".join(bg.fmt(v) for v in values)


# ---------------------------------------------------------------------------------------------- 1-D


@CHECKS
@given(signal=st.lists(quarters, min_size=1, max_size=16), kernel=st.lists(quarters, min_size=1, max_size=5),
       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 3))
def test_conv1d_matches_torch(F, signal, kernel, stride, padding, dilation):
    try:
        expected = F.conv1d(tensor(signal, 1, 1), tensor(kernel, 1, 1), stride=stride, padding=padding,
                            dilation=dilation)[0, 0].tolist()
    except RuntimeError:  # the kernel does not fit: ours must say so in a sentence, not compute something
        with pytest.raises(BadInputError, match="kernel"):
            bg.conv1d(as_text(signal), as_text(kernel), stride, padding, dilation)
        return
    got = bg.conv1d(as_text(signal), as_text(kernel), stride, padding, dilation)
    assert all(isinstance(v, Fraction) for v in got)
    assert [float(v) for v in got] == expected


@CHECKS
@given(values=st.lists(quarters, min_size=1, max_size=16), size=st.integers(1, 4), stride=st.integers(1, 4))
def test_max_pool1d_matches_torch(F, values, size, stride):
    assume(size <= len(values))
    expected = F.max_pool1d(tensor(values, 1, 1), size, stride)[0, 0].tolist()
    pooled = bg.max_pool1d(values, size, stride)
    assert [float(p.value) for p in pooled] == expected
    for p in pooled:  # each names the window it took its max from
        assert p.values == tuple(values[i] for i in p.covers) and p.value == max(p.values)


@CHECKS
@given(signal=st.lists(quarters, min_size=6, max_size=16), kernel=st.lists(quarters, min_size=1, max_size=3),
       padding=st.integers(0, 1), size=st.integers(1, 3))
def test_signal_layer_is_conv_then_pool_and_its_sums_are_its_outputs(F, signal, kernel, padding, size):
    layer = bg.signal_layer(as_text(signal), as_text(kernel), padding, size, size)
    conv = F.conv1d(tensor(signal, 1, 1), tensor(kernel, 1, 1), padding=padding)
    assert [float(v) for v in layer.output] == conv[0, 0].tolist()
    assert [float(p.value) for p in layer.pooled] == F.max_pool1d(conv, size)[0, 0].tolist()
    for one in layer.sums:
        assert one.value == sum(a * w for a, w in one.terms)
        assert [a for a, _ in one.terms] == [layer.padded[i] for (i,) in one.at]
        assert [w for _, w in one.terms] == list(layer.kernel)


def test_the_default_signal_exercise_exactly():
    layer = bg.signal_layer(bg.SIGNAL, bg.SIGNAL_KERNEL)
    assert [bg.fmt(v) for v in layer.output] == ["-1/2", "2", "-1/2", "-3/4", "-1/2", "3/2", "-1/2", "1/4", "-3/2"]
    assert [p.value for p in layer.pooled] == [2, Fraction(3, 2), Fraction(1, 4)]
    assert layer.sums[1].text == "(1 × -1/2) + (3 × 1) + (1 × -1/2) = 2"
    assert layer.sums[1].at == ((1,), (2,), (3,))  # the three taps lit up: bands 2, 3 and 4
    assert layer.pooled[1].text == "pooled 2 = max of outputs 4, 5, 6 = max(-3/4, -1/2, 3/2) = 3/2"
    padded = bg.signal_layer("1, 2, -1/2", "2, 1, -1", padding=1, pool_size=1)
    assert padded.sums[1].text == "(1 × 2) + (2 × 1) + (-1/2 × -1) = 9/2"
    assert padded.sums[0].terms[0] == (0, 2)  # the zero of the padding
    assert bg.parse_numbers("1 / 2, −3, 0.25", "signal") == [Fraction(1, 2), Fraction(-3), Fraction(1, 4)]


# ---------------------------------------------------------------------------------------------- graphs


@st.composite
def graphs(draw):
    n = draw(st.integers(1, bg.MAX_NODES))
    pairs = [(u, v) for u in range(1, n + 1) for v in range(u + 1, n + 1)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    lines: dict[int, list[int]] = {}
    for u, v in edges:  # written on one side or the other, as a person might
        a, b = (u, v) if draw(st.booleans()) else (v, u)
        lines.setdefault(a, []).append(b)
    text = "\n".join(f"{a}: {', '.join(map(str, b))}" for a, b in lines.items())
    features = draw(st.lists(quarters, min_size=n, max_size=n))
    return n, set(edges), text, features


@CHECKS
@given(graph=graphs(), weight=quarters)
def test_mean_aggregation_matches_dense_numpy(graph, weight):
    n, edges, text, features = graph
    parsed, h, out = bg.graph_layer(text, as_text(features), bg.fmt(weight))
    assert parsed.edges == frozenset(edges)
    a = np.zeros((n, n), dtype=int)
    for u, v in edges:
        a[u - 1, v - 1] = a[v - 1, u - 1] = 1
    a_hat = a + np.eye(n, dtype=int)
    dense = weight * (a_hat @ np.array(features, dtype=object)) / a_hat.sum(axis=1)  # (A + I) h / deg, exact
    assert [agg.value for agg in out] == list(dense)
    for v, agg in enumerate(out, start=1):
        assert list(agg.fed_by) == [u + 1 for u in np.flatnonzero(a_hat[v - 1])]


def test_the_default_graphs_exactly():
    graph, h, out = bg.graph_layer(*bg.GRAPHS["path"])
    assert out[1].text == "node 2: (3 + 1 + 1/2) / 3 = 3/2" and out[1].fed_by == (1, 2, 3)
    assert [bg.fmt(a.value) for a in out] == ["2", "3/2", "7/6", "5/6", "1"]
    _, _, star = bg.graph_layer(*bg.GRAPHS["star"])
    assert star[0].text == "node 1: (0 + 1 + 2 + 3 + 4) / 5 = 2" and star[1].value == Fraction(1, 2)
    _, _, ring = bg.graph_layer(*bg.GRAPHS["ring"])
    assert [a.value for a in ring] == [Fraction(1, 3), Fraction(1, 3), 0, 0, 0, Fraction(1, 3)]
    _, _, methanol = bg.graph_layer(*bg.GRAPHS["molecule (methanol)"])
    assert methanol[0].text == "node 1: (6 + 8 + 1 + 1 + 1) / 5 = 17/5"
    _, _, doubled = bg.graph_layer(*bg.GRAPHS["path"], "2")
    assert doubled[1].text == "node 2: 2 × (3 + 1 + 1/2) / 3 = 3"
    lonely = bg.graph_layer("", "5")[2][0]
    assert lonely.text == "node 1: (5) / 1 = 5"


# ---------------------------------------------------------------------------------------------- 3-D


@CHECKS
@given(shape=st.tuples(*[st.integers(1, 5)] * 3), kernel=st.tuples(*[st.integers(1, 4)] * 3),
       stride=st.tuples(*[st.integers(1, 3)] * 3), padding=st.tuples(*[st.integers(0, 2)] * 3),
       dilation=st.tuples(*[st.integers(1, 2)] * 3))
def test_output_sizes_match_torch_conv3d(F, shape, kernel, stride, padding, dilation):
    import torch

    x, w = torch.zeros(1, 1, *shape), torch.zeros(1, 1, *kernel)
    try:
        expected = tuple(F.conv3d(x, w, stride=stride, padding=padding, dilation=dilation).shape[2:])
    except RuntimeError:
        with pytest.raises(BadInputError, match="the kernel spans .* along"):
            bg.output_sizes(shape, kernel, stride, padding, dilation)
        return
    assert bg.output_sizes(shape, kernel, stride, padding, dilation) == expected
    formulas = bg.size_formulas(shape, kernel, stride, padding, dilation)
    assert [axis for axis, _ in formulas] == list(bg.AXES)
    assert [int(text.rsplit("= ", 1)[1]) for _, text in formulas] == list(expected)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, sizes", [
    ((2, 4, 4), (2, 3, 3), 1, 0, 1, (1, 2, 2)),       # the exercise: two frames in, one frame out
    ((2, 4, 4), (2, 3, 3), 1, (0, 1, 1), 1, (1, 4, 4)),  # "same" padding in space, none in time
    ((2, 4, 4), (1, 3, 3), (1, 2, 2), 1, 1, (4, 2, 2)),
    ((4, 8, 8), (3, 3, 3), 2, 1, 2, (1, 3, 3)),
])
def test_output_sizes_by_hand(F, shape, kernel, stride, padding, dilation, sizes):
    import torch

    assert bg.output_sizes(shape, kernel, stride, padding, dilation) == sizes
    out = F.conv3d(torch.zeros(1, 1, *shape), torch.zeros(1, 1, *kernel), stride=stride, padding=padding,
                   dilation=dilation)
    assert tuple(out.shape[2:]) == sizes


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
       kernel=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)), stride=st.integers(1, 2),
       padding=st.integers(0, 1))
def test_conv3d_values_match_torch(F, data, shape, kernel, stride, padding):
    assume(all(k <= n + 2 * padding for n, k in zip(shape, kernel)))
    x = np.array(data.draw(st.lists(quarters, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                 dtype=object).reshape(shape)
    w = np.array(data.draw(st.lists(quarters, min_size=int(np.prod(kernel)), max_size=int(np.prod(kernel)))),
                 dtype=object).reshape(kernel)
    got = bg.conv3d(x, w, stride, padding)
    expected = F.conv3d(tensor(x, 1, 1), tensor(w, 1, 1), stride=stride, padding=padding)[0, 0].numpy()
    np.testing.assert_array_equal(got.astype(np.float64), expected)
    last = tuple(n - 1 for n in got.shape)
    assert bg.volume_sum(x, w, last, stride, padding).value == got[last]


def test_the_default_volume_exercise_exactly():
    kernel = bg.volume_kernel("vertical line, then horizontal", 2, 3, 3)
    out = bg.conv3d(bg.VOLUME, kernel)
    assert out.shape == (1, 2, 2)
    assert out.tolist() == [[[Fraction(3, 2), -3], [Fraction(3, 2), Fraction(9, 2)]]]
    one = bg.volume_sum(bg.VOLUME, kernel, (0, 0, 0))
    assert len(one.terms) == 18 and {d for d, _, _ in one.at} == {0, 1}  # a sum over both frames
    assert one.text.startswith("(0 × -1/2) + (1 × 1) + (0 × -1/2) + ")
    assert one.text.endswith("(0 × -1/2) + (1 × -1/2) + (1 × -1/2) = 3/2")
    assert bg.size_formulas((2, 4, 4), (2, 3, 3)) == [
        ("depth (frames)", "floor((2 + 2·0 - 1·(2 - 1) - 1) / 1) + 1 = 1"),
        ("height (rows)", "floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2"),
        ("width (columns)", "floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2")]
    text = bg.format_volume(bg.VOLUME)
    assert (bg.parse_volume(text, "input") == bg.VOLUME).all()
    motion = bg.volume_kernel("frame difference (motion)", 2, 3, 3)
    assert (motion[0] == -1).all() and (motion[1] == 1).all()
    assert bg.volume_kernel("average", 2, 2, 2)[0, 0, 0] == Fraction(1, 8)


# ---------------------------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize("call, message", [
    (lambda: bg.signal_layer("1, two, 3", "1"), "signal, value 2: 'two' is not a number"),
    (lambda: bg.signal_layer("1, 2", "1, 0, -1"), "the kernel has 3 values but the signal only 2"),
    (lambda: bg.signal_layer("", "1"), "the signal is empty"),
    (lambda: bg.signal_layer("1, 2, 3, 4", "1, 1", pool_size=4), "the pooling window covers 4 values but the "
                                                                 "convolution gives only 3"),
    (lambda: bg.signal_layer("1, 2, 3", "1", padding=-1), "padding must be a whole number from 0"),
    (lambda: bg.signal_layer("1, 2, 3", "1", pool_stride=1.5), "pooling stride must be a whole number"),
    (lambda: bg.signal_layer("1, 2, 3", "1", pool_size=None), "pooling size is empty"),
    (lambda: bg.signal_layer(", ".join(["1"] * 30), "1"), "keep it to 24 or fewer"),
    (lambda: bg.graph_layer("1: 2\n2: 7", "1, 2, 3"), "names node 7, but there are only 3 nodes"),
    (lambda: bg.graph_layer("1 2", "1, 2"), "write a node, a colon and its neighbours"),
    (lambda: bg.graph_layer("1: b", "1, 2"), "'b' is not a node number"),
    (lambda: bg.graph_layer("2: 2", "1, 2"), "makes node 2 its own neighbour"),
    (lambda: bg.graph_layer("1: 2", "1, 2", "1/0"), "weight"),
    (lambda: bg.output_sizes((2, 4, 4), (3, 3, 3)), "the kernel spans 3 along depth \\(frames\\), but the input "
                                                    "has only 2"),
    (lambda: bg.output_sizes((2, 4, 4), (2, 3, 3), stride=0), "stride along depth \\(frames\\) must be a whole"),
    (lambda: bg.parse_volume("1 2\n3\n\n1 2\n3 4", "input"), "the input is ragged"),
    (lambda: bg.conv3d(np.zeros((5, 2, 2), dtype=int), np.ones((1, 1, 1), dtype=int)), "keep it to 4 frames"),
    (lambda: bg.volume_kernel("blur", 2, 3, 3), "no kernel preset named 'blur'"),
])
def test_bad_input_is_a_sentence(call, message):
    with pytest.raises(BadInputError, match=message):
        call()
