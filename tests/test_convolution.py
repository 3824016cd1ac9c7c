"""The numeric core: the lecture exercise exactly, and torch's conv2d / pooling on random inputs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convzoo import convolution as cv
from convzoo.errors import BadInputError

torch = pytest.importorskip("torch")  # torch is the reference here only; the core itself never imports it
torch.set_num_threads(1)
F = torch.nn.functional

IMAGE = [[0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, -2, 0, -2]]
FILTER_A = [["-1/2", "1", "-1/2"]] * 3
FILTER_B = [["-1/2"] * 3, ["1"] * 3, ["-1/2"] * 3]


def exercise():
    image = cv.parse_matrix(IMAGE, "image")
    filters = np.stack([cv.parse_matrix(FILTER_A), cv.parse_matrix(FILTER_B)])
    return image, filters


def test_lecture_exercise_exactly_as_fractions():
    image, filters = exercise()
    out = cv.conv2d(image, filters)
    assert out.tolist() == [[[2, -2], [-1, 1]], [[-1, Fraction(-1, 2)], [Fraction(7, 2), 4]]]
    assert all(type(v) is Fraction for v in out.flat)
    pooled = cv.max_pool2d(out, 2)
    assert pooled.tolist() == [[[2]], [[4]]]
    assert cv.format_matrix(out[1]) == [["-1", "-1/2"], ["7/2", "4"]]


def test_expansion_reads_like_the_slides():
    image, filters = exercise()
    expansion = cv.expand(image, filters, 0, 0, 0)
    assert expansion.text.startswith("(0 × -1/2) + (1 × 1) + (0 × -1/2) + ")
    assert expansion.text.endswith(" = 2")
    assert len(expansion.terms) == 9
    assert expansion.window[0] == (0, 0, 0) and expansion.window[-1] == (0, 2, 2)
    # B's bottom-right cell, 4: the window is rows 1..3, columns 1..3
    assert cv.expand(image, filters, 1, 1, 1).window[0] == (0, 1, 1)
    assert cv.expand(image, filters, 1, 1, 1).value == 4


def test_expansion_follows_stride_dilation_padding_and_bias():
    rng = np.random.default_rng(0)
    x = cv.exact(rng.integers(-3, 4, (2, 6, 7)))
    w = cv.exact(rng.integers(-2, 3, (3, 2, 2, 3)))
    out = cv.conv2d(x, w, bias=[1, "1/2", 0], stride=2, padding=1, dilation=2)
    for f, r, c in [(0, 0, 0), (1, 1, 2), (2, out.shape[1] - 1, out.shape[2] - 1)]:
        e = cv.expand(x, w, f, r, c, bias=[1, "1/2", 0], stride=2, padding=1, dilation=2)
        assert e.value == out[f, r, c] == sum(a * b for a, b in e.terms) + e.bias


def test_output_size_formula():
    assert cv.output_size_formula(4, 3) == "floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2"
    assert cv.output_size(28, 5, stride=1, padding=2) == 28
    assert cv.output_size(224, 11, stride=4, padding=2) == 55  # AlexNet's first layer
    assert cv.output_size(7, 3, stride=2, padding=0, dilation=2) == 2


@pytest.mark.parametrize("call, message", [
    (lambda: cv.conv2d(cv.exact([[1, 2], [3, 4]]), cv.exact(np.ones((3, 3)))), "spans 3 pixels"),
    (lambda: cv.conv2d(cv.exact([[1, 2], [3, 4]]), cv.exact([[1]]), stride=0), "stride must be at least 1"),
    (lambda: cv.parse_matrix([["1", "x"]]), "'x' is not a number"),
    (lambda: cv.parse_matrix([["1", "2"], ["3"]]), "ragged rows"),
    (lambda: cv.parse_matrix([["1", ""]]), "is empty"),
    (lambda: cv.parse_matrix([["1", "1/0"]]), "is not a number"),
    (lambda: cv.max_pool2d(cv.exact([[1, 2]]), 2), "pooling window spans 2"),
    (lambda: cv.conv2d(np.ones((2, 4, 4)), np.ones((1, 3, 3, 3))), "3 channels but the input has 2"),
])
def test_bad_settings_are_plain_messages(call, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_numbers_parse_as_typed():
    assert cv.parse_number(" -1/2 ") == Fraction(-1, 2)
    assert cv.parse_number("0.1") == Fraction(1, 10)
    assert cv.parse_number("\u22123") == -3  # a minus sign pasted from slides
    assert cv.parse_number(0.1) == Fraction(1, 10)
    assert cv.format_number(Fraction(7, 2)) == "7/2" and cv.format_number(Fraction(-4, 1)) == "-4"
    assert cv.format_number(Fraction(1, 3 ** 12)).startswith("≈")


def test_relu_and_average_pool_stay_exact():
    out = cv.conv2d(*exercise())
    assert cv.relu(out).tolist() == [[[2, 0], [0, 1]], [[0, 0], [Fraction(7, 2), 4]]]
    assert cv.avg_pool2d(out, 2).tolist() == [[[0]], [[Fraction(3, 2)]]]


conv_cases = st.fixed_dictionaries({
    "channels": st.integers(1, 3), "filters": st.integers(1, 3),
    "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "dilation": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "h": st.integers(1, 12), "w": st.integers(1, 12), "bias": st.booleans(), "seed": st.integers(0, 2 ** 16),
})


@settings(max_examples=150, deadline=None)
@given(conv_cases)
def test_conv2d_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["channels"], case["h"], case["w"]))
    w = rng.normal(size=(case["filters"], case["channels"], case["kh"], case["kw"]))
    b = rng.normal(size=case["filters"]) if case["bias"] else None
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    sizes, kernels = (case["h"], case["w"]), (case["kh"], case["kw"])
    fits = all(sizes[a] + 2 * case["padding"][a] >= case["dilation"][a] * (kernels[a] - 1) + 1 for a in (0, 1))
    if not fits:
        with pytest.raises(BadInputError):
            cv.conv2d(x, w, b, **args)
        return
    expected = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                        **args)[0].numpy()
    np.testing.assert_allclose(cv.conv2d(x, w, b, **args), expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(conv_cases)
def test_exact_conv2d_equals_float_conv2d_on_integers(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(-4, 5, (case["channels"], case["h"] + 4, case["w"] + 4))
    w = rng.integers(-3, 4, (case["filters"], case["channels"], min(case["kh"], 3), min(case["kw"], 3)))
    args = dict(stride=case["stride"], padding=case["padding"], dilation=(1, 1))
    exact_out = cv.conv2d(cv.exact(x), cv.exact(w), **args)
    assert exact_out.dtype == object
    np.testing.assert_array_equal(exact_out.astype(np.float64), cv.conv2d(x.astype(float), w.astype(float), **args))


@settings(max_examples=150, deadline=None)
@given(channels=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       seed=st.integers(0, 2 ** 16))
def test_pooling_matches_torch(channels, h, w, kernel, stride, seed):
    x = np.random.default_rng(seed).normal(size=(channels, h, w))
    if kernel[0] > h or kernel[1] > w:
        with pytest.raises(BadInputError):
            cv.max_pool2d(x, kernel, stride)
        return
    t = torch.from_numpy(x)[None]
    np.testing.assert_allclose(cv.max_pool2d(x, kernel, stride), F.max_pool2d(t, kernel, stride)[0].numpy())
    np.testing.assert_allclose(cv.avg_pool2d(x, kernel, stride), F.avg_pool2d(t, kernel, stride)[0].numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cv.relu(x), F.relu(t)[0].numpy())


@settings(max_examples=60, deadline=None)
@given(axes=st.sampled_from([1, 3]), channels=st.integers(1, 2), filters=st.integers(1, 2),
       shape=st.lists(st.integers(1, 6), min_size=3, max_size=3), kernel=st.lists(st.integers(1, 3), min_size=3,
                                                                                 max_size=3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), dilation=st.integers(1, 2), bias=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_one_engine_for_1d_and_3d_matches_torch(axes, channels, filters, shape, kernel, stride, padding, dilation,
                                                bias, seed):
    """``convolve`` is the one engine behind the 1-D signal and the 3-D volume too (issue 25): floats against torch,
    and its exact sums against their written-out terms."""
    shape, kernel = shape[:axes], kernel[:axes]
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, (channels, *shape))
    w = rng.integers(-3, 4, (filters, channels, *kernel))
    b = rng.integers(-2, 3, filters) if bias else None
    args = dict(stride=stride, padding=padding, dilation=dilation)
    if any(n + 2 * padding < dilation * (k - 1) + 1 for n, k in zip(shape, kernel)):
        with pytest.raises(BadInputError, match="spans"):
            cv.convolve(x.astype(float), w.astype(float), b, axes=axes, **args)
        return
    torch_conv = F.conv1d if axes == 1 else F.conv3d
    expected = torch_conv(torch.from_numpy(x.astype(float))[None], torch.from_numpy(w.astype(float)),
                          None if b is None else torch.from_numpy(b.astype(float)), **args)[0].numpy()
    np.testing.assert_allclose(cv.convolve(x.astype(float), w.astype(float), b, axes=axes, **args), expected,
                               rtol=1e-10, atol=1e-10)
    exact_out = cv.convolve(cv.exact(x), cv.exact(w), b, axes=axes, **args)
    np.testing.assert_array_equal(exact_out.astype(np.float64), expected)
    last = tuple(n - 1 for n in exact_out.shape)
    e = cv.expand(cv.exact(x), cv.exact(w), *last, bias=b, **args)
    assert e.value == exact_out[last] == sum(a * c for a, c in e.terms) + e.bias
    assert len(e.terms) == channels * int(np.prod(kernel)) and all(len(at) == axes for at in e.at)
