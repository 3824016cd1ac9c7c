"""The filter playground: its functions directly, and the launched app through gradio_client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from convzoo.errors import ConvzooError
from gradio_client import Client, handle_file
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from convzoo import registry
from convzoo.demos import examples, inside, playground
from convzoo.packaging import write_model
from convzoo.runtime import load_model

EXERCISE = playground.grid_value(playground.EXERCISE_IMAGE)
A = playground.grid_value(playground.preset("vertical line (lecture A)"))
B = playground.grid_value(playground.preset("horizontal line (lecture B)"))
C = playground.grid_value(playground.preset("Sobel x (vertical edges)"))
D = playground.grid_value(playground.preset("Laplacian"))
IMAGE_SHAPE = ["batch", 1, 28, 28]
SETTINGS = dict(stride=1, padding=0, dilation=1, relu=False, pooling="max", pooling_size=2, pooling_stride=2)


def state(image=EXERCISE, filters=2, grids=(A, B, C, D), biases=("0",) * 4, cell=None, **settings):
    s = SETTINGS | settings
    return playground.matrix_state(image, filters, *grids, *biases, s["stride"], s["padding"], s["dilation"], s["relu"],
                                   s["pooling"], s["pooling_size"], s["pooling_stride"], cell)


def cells(html: str, letter: str) -> list[str]:
    """The values of output ``letter`` in reading order, from the data-cell attributes of the HTML."""
    import re

    return re.findall(rf"data-cell='{letter}: row \d+, column \d+'[^>]*>([^<]+)<", html)


# ---------------------------------------------------------------------------------------------- functions


def test_default_state_is_the_lecture_exercise():
    html, choices, chosen, expansion, message = state()
    assert message == ""
    assert cells(html, "A") == ["2", "-2", "-1", "1"]
    assert cells(html, "B") == ["-1", "-1/2", "7/2", "4"]
    assert "max-pool 2x2" in html and ">2</td>" in html and ">4</td>" in html
    assert "floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2" in html
    assert chosen == "A: row 1, column 1" and len(choices) == 8 + 2  # and the two pooled values
    assert "(0 × -1/2) + (1 × 1) + (0 × -1/2) + " in expansion and expansion.count("cz-win") == 9
    assert "= 2</div>" in expansion


def test_choosing_a_cell_moves_the_window():
    _, _, chosen, expansion, _ = state(cell="B: row 2, column 2")
    assert chosen == "B: row 2, column 2"
    assert "Output B, row 2, column 2 = 4" in expansion
    assert expansion.endswith("= 4</div></div>")


@pytest.mark.parametrize("change, message", [
    (dict(stride=0), "stride must be a whole number from 1 to 12, got 0"),
    (dict(padding=-1), "padding must be a whole number from 0 to 6, got -1"),
    (dict(padding=5000), "padding must be a whole number from 0 to 6, got 5000"),  # issue 22: it hung, 11 GB
    (dict(padding="1e5000"), "padding must be a whole number from 0 to 6"),
    (dict(padding=float("nan")), "padding must be a whole number from 0 to 6, got nan"),
    (dict(dilation=10 ** 5000), "dilation must be a whole number from 1 to 12, got a number of about 5,000 digits"),
    (dict(pooling_stride=13), "pooling stride must be a whole number from 1 to 12"),
    (dict(biases=("1e4300", "0", "0", "0")), "bias of filter A must be"),
    (dict(image=playground.grid_value([["1"] * 13] * 4)), "the image is 4x13; by hand, keep it to at most 12x12"),
    (dict(grids=(playground.grid_value([["1", "x"], ["0", "0"]]), B, C, D), filters=1), "'x' is not a number"),
    (dict(image={"headers": ["1", "2"], "data": [["1", "2"], ["3"]]}), "ragged rows"),
    (dict(grids=(playground.grid_value(playground.preset("box blur", 5)), B, C, D)), "share one size"),
    (dict(image=playground.grid_value([["1", "2"], ["3", "4"]])), "spans 3 pixels"),
    (dict(filters=7), "number of filters must be a whole number from 1 to 4"),
    (dict(biases=("1/0", "0", "0", "0")), "bias of filter A"),
])
def test_bad_settings_are_messages_not_tracebacks(change, message):
    html, _, _, expansion, text = state(**change)
    assert message in text.replace("\\", "")
    assert html == "" and expansion == ""


def test_relu_padding_stride_and_average_pooling():
    html, choices, _, _, _ = state(padding=1, stride=2, relu=True, pooling="average")
    assert "floor((4 + 2·1 - 1·(3 - 1) - 1) / 2) + 1 = 2" in html
    assert "after ReLU" in html and "average-pool 2x2" in html
    html, choices, _, expansion, _ = state(padding=1, cell="A: row 1, column 1")
    assert len(choices) == 2 * 16 + 2 * 4 and "zero padding" in expansion and "cz-pad" in expansion


def test_pooling_that_does_not_fit_keeps_the_convolution():
    html, choices, chosen, expansion, message = state(pooling_size=3)  # a 3x3 window on the 2x2 outputs (issue 23)
    assert "pooling window spans 3" in message and "outputs are shown" in message
    assert cells(html, "A") == ["2", "-2", "-1", "1"] and "does not fit" in html
    assert chosen == "A: row 1, column 1" and len(choices) == 8 and "= 2</div>" in expansion


@pytest.mark.parametrize("pooling, cell, text, winner", [
    ("max", "B: pooled row 1, column 1", "max(-1, -1/2, 7/2, 4) = 4", "4"),
    ("max", "A: pooled row 1, column 1", "max(2, -2, -1, 1) = 2", "2"),
    ("average", "B: pooled row 1, column 1", "(-1 + -1/2 + 7/2 + 4) / 4 = 3/2", None),
])
def test_a_pooled_value_shows_its_window_and_the_winner(pooling, cell, text, winner):
    html, _, chosen, expansion, _ = state(pooling=pooling, cell=cell)
    assert chosen == cell and f"data-cell='{cell}' class='cz-sel'" in html
    assert text in expansion and expansion.count("cz-win") == (3 if winner else 4)
    if winner:
        assert f"<td class='cz-sel'>{winner}</td>" in expansion


def test_presets_and_resizing():
    assert playground.preset("vertical line (lecture A)") == [["-1/2", "1", "-1/2"]] * 3
    assert playground.preset("Gaussian blur") == [["1/16", "1/8", "1/16"], ["1/8", "1/4", "1/8"],
                                                  ["1/16", "1/8", "1/16"]]
    assert playground.preset("Sobel x (vertical edges)", 5)[2] == ["0", "-2", "0", "2", "0"]
    assert playground.preset("identity", 5)[2][2] == "1"
    for name in playground.PRESETS:
        assert len(playground.preset(name, 3)) == 3
    grown = playground.resized(EXERCISE, 5, 3)
    assert grown[0] == ["0", "1", "0"] and grown[4] == ["0", "0", "0"]
    with pytest.raises(Exception, match="3x3 filter"):
        playground.preset("sharpen", 2)


def test_image_view_grey_and_per_channel():
    photo = examples.load("astronaut (colour)", max_side=64)
    args = [2, A, B, C, D, "0", "0", "0", "0", 1, 0, 1, False, "max", 2, 2]
    grey, message = playground.image_view(photo, "grey", 64, *args)
    assert message == "" and isinstance(grey, Image.Image)
    colour, _ = playground.image_view(photo, "per channel", 64, *args)
    assert colour.width > grey.width  # three channel columns per filter instead of one
    none, message = playground.image_view(photo, "grey", 64, *args[:9], 0, *args[10:])
    assert none is None and "stride must be a whole number from 1 to 12" in message


def test_examples_ship_with_scikit_image():
    for name in examples.names():
        pixels = examples.load(name, max_side=96)
        assert pixels.dtype == np.uint8 and max(pixels.shape[:2]) <= 96 and pixels.ndim in (2, 3)


# ---------------------------------------------------------------------------------------------- inside


def test_inside_tiny_classifier(tiny_store):
    probe = inside.probe_stored(tiny_store, "tiny-cifar")
    assert probe.weights.shape == (8, 3, 3, 3)
    assert [layer.ops for layer in probe.layers] == [("Conv", "Relu")]
    coffee = examples.load("coffee (colour)", 64)
    filters, layer1, layer2, info = playground.inside_view(tiny_store, "tiny-cifar", coffee)
    assert isinstance(filters, Image.Image) and isinstance(layer1, Image.Image) and layer2 is None
    assert "only one convolution" in info


def lenet_like(with_bn: bool, seed: int = 0) -> onnx.ModelProto:
    """conv5 [-> bn] -> relu -> maxpool -> conv5 -> relu -> maxpool -> flatten -> gemm, as torch exports LeNet-5."""
    rng = np.random.default_rng(seed)
    t = lambda name, shape: numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], kernel_shape=[5, 5], pads=[2, 2, 2, 2])]
    inits = [t("w1", (6, 1, 5, 5)), t("b1", (6,)), t("w2", (16, 6, 5, 5)), t("b2", (16,)), t("w3", (10, 400)),
             t("b3", (10,))]
    first = "c1"
    if with_bn:
        nodes.append(helper.make_node("BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["n1"]))
        inits += [numpy_helper.from_array(np.ones(6, np.float32), n) for n in ("g", "var")]
        inits += [numpy_helper.from_array(np.zeros(6, np.float32), n) for n in ("beta", "mu")]
        first = "n1"
    nodes += [helper.make_node("Relu", [first], ["r1"]),
              helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[5, 5]),
              helper.make_node("Relu", ["c2"], ["r2"]),
              helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Flatten", ["p2"], ["f"]),
              helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "lenet", [helper.make_tensor_value_info("image", TensorProto.FLOAT, IMAGE_SHAPE)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("with_bn", [False, True])
def test_inside_two_layer_classifier(tmp_path: Path, with_bn: bool):
    write_model(tmp_path, registry.get("lenet5-fashion"), lenet_like(with_bn), metrics={}, manifest_extra={},
                source={"note": "test"})
    store = registry.Store(tmp_path)
    probe = inside.probe_stored(store, "lenet5-fashion")
    assert probe.weights.shape == (6, 1, 5, 5)
    first = ("Conv", "BatchNormalization", "Relu") if with_bn else ("Conv", "Relu")
    assert [layer.ops for layer in probe.layers] == [first, ("Conv", "Relu")]
    maps1, maps2 = probe.run(load_model("lenet5-fashion", store).preprocess(examples.load("camera (grey)", 64)))
    assert maps1.shape == (6, 28, 28) and maps2.shape == (16, 10, 10)
    assert maps1.min() >= 0 and maps2.min() >= 0  # after ReLU, before pooling
    filters, layer1, layer2, info = playground.inside_view(store, "lenet5-fashion", examples.load("camera (grey)"))
    assert layer2 is not None and "16 filters of 5x5" in info


def test_inside_int8_qdq_classifier(tmp_path: Path):
    """Statically quantized (QDQ) models: weights come out of DequantizeLinear, maps out of a Q/DQ pair."""
    rng = np.random.default_rng(0)
    w_int8 = rng.integers(-127, 128, (4, 1, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(w_int8, "w_q"), numpy_helper.from_array(np.array(0.01, np.float32), "w_s"),
             numpy_helper.from_array(np.array(0, np.int8), "w_z"),
             numpy_helper.from_array(np.array(0.05, np.float32), "a_s"),
             numpy_helper.from_array(np.array(0, np.uint8), "a_z"),
             numpy_helper.from_array(rng.normal(size=(10, 4)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fc_b")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]),
             helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "a_s", "a_z"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "a_s", "a_z"], ["c_dq"]),
             helper.make_node("MaxPool", ["c_dq"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("image", TensorProto.FLOAT, IMAGE_SHAPE)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    write_model(tmp_path, registry.get("lenet5-fashion-int8"), model, metrics={}, manifest_extra={}, source={})
    probe = inside.probe_stored(registry.Store(tmp_path), "lenet5-fashion-int8")
    np.testing.assert_allclose(probe.weights, w_int8.astype(np.float32) * 0.01, rtol=1e-6)
    assert probe.layers[0].ops == ("Conv", "int8 round trip") and probe.layers[0].output == "c_dq"
    (maps,) = probe.run(np.ones((1, 1, 28, 28), np.float32))
    assert maps.shape == (4, 28, 28) and maps.min() >= 0  # uint8 activations: the quantization range clips at 0


@pytest.mark.parametrize("name", ["lenet5-fashion", "resnet18-cifar10"])
def test_inside_models_exported_by_convzoo(tmp_path: Path, name: str):
    """The real thing: an architecture from convzoo.models exported by convzoo.export (untrained weights)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from convzoo.export import to_onnx
    from convzoo.models import build

    entry = registry.get(name)
    model = to_onnx(build(entry).eval(), entry, torch.zeros(1, entry.in_channels, *entry.preprocess.size))
    write_model(tmp_path, entry, model, metrics={}, manifest_extra={}, source={})
    store = registry.Store(tmp_path)
    probe = inside.probe_stored(store, name)
    assert len(probe.layers) == 2 and probe.weights.shape[1] == entry.in_channels
    assert all(layer.ops[-1] == "Relu" for layer in probe.layers)  # after ReLU, before any pooling
    filters, layer1, layer2, info = playground.inside_view(store, name, examples.load("astronaut (colour)"))
    assert filters is not None and layer1 is not None and layer2 is not None, info
    assert "says:" in info


def test_inside_without_a_classifier_says_how_to_get_one(tmp_path):
    _, _, _, info = playground.inside_view(registry.Store(tmp_path), None, None)
    assert "convzoo train lenet5-fashion" in info and "convzoo export lenet5-fashion" in info


# ---------------------------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def test_app_convolve_through_gradio_client(client):
    html, cell, expansion, message = client.predict(EXERCISE, 2, A, B, C, D, "0", "0", "0", "0", 1, 0, 1, False,
                                                    "max", 2, 2, "B: row 2, column 1", api_name="/convolve")
    assert message == ""
    assert cells(html, "B") == ["-1", "-1/2", "7/2", "4"]
    assert cell["value"] == "B: row 2, column 1" and "= 7/2" in expansion  # the chooser comes back as an update
    edited = playground.grid_value([["-1/2", "1", "-1/2"], ["-1/2", "1", "-1/2"], ["-1/2", "1", "-1/2"]])
    edited["data"][0][1] = "2"
    html, _, _, _ = client.predict(EXERCISE, 1, edited, B, C, D, "0", "0", "0", "0", 1, 0, 1, False, "none", 2, 2,
                                   None, api_name="/convolve")
    assert cells(html, "A") == ["3", "-2", "0", "1"]  # the top-middle weight now counts twice
    assert "data-cell='B" not in html  # one filter asked for, one output
    *_, message = client.predict(EXERCISE, 2, A, B, C, D, "0", "0", "0", "0", 0, 0, 1, False, "max", 2, 2, None,
                                 api_name="/convolve")
    assert "stride must be a whole number from 1 to 12" in message


def test_app_controls_through_gradio_client(client):
    assert client.predict(2, api_name="/add_filter") == 3
    assert client.predict(1, api_name="/remove_filter") == 1
    grid, _ = client.predict(EXERCISE, 5, 6, api_name="/resize_image")
    assert len(grid["data"]) == 5 and len(grid["data"][0]) == 6 and grid["headers"][-1] == "6"
    *grids, message = client.predict(5, A, B, C, D, api_name="/resize_filters")
    assert all(len(g["data"]) == 5 for g in grids) and message == ""
    grid, _ = client.predict("Gaussian blur", 3, api_name="/preset_C")
    assert grid["data"][1][1] == "1/4"


def test_app_image_view_and_inside_through_gradio_client(client, tmp_path):
    path = tmp_path / "stripes.png"
    Image.fromarray(examples.load(examples.DRAWN[0])).save(path)
    figure, message = client.predict(handle_file(str(path)), "grey", 128, 2, A, B, C, D, "0", "0", "0", "0", 1, 1, 1,
                                     True, "max", 2, 2, api_name="/filter_image")
    assert message == "" and Image.open(figure).width > 200
    example = client.predict("coffee (colour)", api_name="/load_example")
    assert Image.open(example).mode == "RGB"
    filters, layer1, layer2, info = client.predict("tiny-fashion", handle_file(str(path)), api_name="/inside_cnn")
    assert Image.open(filters).width > 50 and Image.open(layer1).width > 50 and layer2 is None
    assert "tiny-fashion" in info and "8 filters of 3x3" in info


def test_a_layer_is_read_from_the_ui_values_in_one_place():
    values = [3, A, B, C, D, "1", "2", "3", "4", 1, 0, 1, True, "max", 2, 2]
    layer = playground.Layer.from_values(values)
    assert len(layer.filters) == 3 and layer.biases == ("1", "2", "3") and layer.settings.relu
    with pytest.raises(ConvzooError, match="described by"):
        playground.Layer.from_values(values[:-1])
    with pytest.raises(ConvzooError, match="number of filters"):
        playground.Layer.from_values([playground.MAX_FILTERS + 1, *values[1:]])


def test_a_click_event_names_its_cell_and_a_stray_click_keeps_the_choice():
    values = [EXERCISE, 2, A, B, C, D, "0", "0", "0", "0", 1, 0, 1, False, "max", 2, 2]
    _, cell, _, _ = playground.pick_cell(playground.CellClick(None, {"cell": "B: row 2, column 2"}), *values,
                                         "A: row 1, column 1")
    assert (cell["value"] if isinstance(cell, dict) else cell.value) == "B: row 2, column 2"
    _, cell, _, _ = playground.pick_cell(playground.CellClick(None, {}), *values, "A: row 1, column 2")
    assert (cell["value"] if isinstance(cell, dict) else cell.value) == "A: row 1, column 2"
