"""The shuffled-pixels experiment: the permutation lives inside the models (and their ONNX graphs), the app shows
the same permutation, and the shipped cards carry the table `convzoo eval` measured."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from convzoo import registry
from convzoo.demos import thinking
from convzoo.models import build
from convzoo.permutation import pixel_permutation, shuffle_pixels
from convzoo.registry import Store, shipped_store
from convzoo.runtime import normalize

SHUFFLED = ["lenet5-fashion-shuffled", "mlp-fashion-shuffled"]
SHIPPED = Store(shipped_store())


def test_the_permutation_is_one_fixed_order():
    p = pixel_permutation(0, 784)
    assert sorted(p.tolist()) == list(range(784)) and not np.array_equal(p, np.arange(784))
    assert np.array_equal(p, pixel_permutation(0, 784)) and not np.array_equal(p, pixel_permutation(1, 784))
    image = np.arange(784, dtype=np.int64).reshape(28, 28)
    assert np.array_equal(shuffle_pixels(image, 0).ravel(), p)  # output pixel i is input pixel p[i]


@pytest.mark.parametrize("name", SHUFFLED)
def test_the_shuffled_model_is_its_plain_network_on_the_apps_shuffled_image(name, tmp_path):
    entry = registry.get(name)
    torch.manual_seed(0)
    model = build(entry).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    x = torch.from_numpy(normalize(pixels, entry.preprocess))
    seen_by_app = torch.from_numpy(normalize(shuffle_pixels(pixels, thinking.SHUFFLE_SEED), entry.preprocess))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.inner(seen_by_app))
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}})
    assert "Gather" in {node.op_type for node in onnx.load(str(path)).graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], model.inner(seen_by_app).numpy(),
                                   atol=1e-5)


def test_the_mlp_has_lenets_order_of_parameters():
    assert abs(registry.get("mlp-fashion").params / registry.get("lenet5-fashion").params - 1) < 0.05


def test_the_shipped_cards_carry_the_measured_table():
    table = None
    for pair in thinking.PAIRS.values():
        for name in pair:
            stored = SHIPPED.get(name)
            experiment = stored.manifest["experiment"]
            table = table or experiment["accuracy"]
            assert experiment["accuracy"] == table  # one table, the same in all four
            assert table[name] == stored.metrics["accuracy"]  # ... and it is what convzoo eval measured
            assert "The shuffled-pixels experiment" in stored.card_path.read_text()
    rows = thinking.experiment_rows(SHIPPED)
    assert [r[0] for r in rows] == ["LeNet-5", "MLP"] and all(r[3].endswith(" pt") for r in rows)


def test_the_tab_compares_the_four_models_on_a_test_image():
    example = next(p for p in thinking.fashion_examples() if p.endswith("-trouser.png"))
    plain, shuffled, *tops = thinking.compare(SHIPPED, example)
    assert len(tops) == 4 and all(len(top) == 3 for top in tops)
    assert next(iter(tops[0])) == "Trouser"  # the plain LeNet on a real test image
    assert plain != shuffled
