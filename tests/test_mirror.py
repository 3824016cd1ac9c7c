"""Test-time mirror averaging folded into an ONNX graph (``convzoo.export.mirror``), on a graph small enough
to reason about: a left-right asymmetric linear classifier, so the mirror pass changes its answer."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from convzoo.errors import ConvzooError
from convzoo.export import mirror
from convzoo.ood import feature_tensors

pytestmark = pytest.mark.unit


def classifier() -> onnx.ModelProto:
    """image N x 1 x 4 x 4 -> Flatten -> Gemm (weights that weigh the left half more) -> logits N x 3."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((16, 3)).astype(np.float32)
    weights[[c for c in range(16) if c % 4 < 2]] *= 5  # the left columns dominate: a mirror image scores otherwise
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], name="flatten"),
         helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], name="fc")],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.ones(3, np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def test_the_folded_graph_returns_the_mean_of_the_image_and_its_mirror():
    plain, x = classifier(), np.random.default_rng(1).standard_normal((5, 1, 4, 4)).astype(np.float32)
    folded = mirror.fold(plain)
    expected = (run(plain, x) + run(plain, np.ascontiguousarray(x[..., ::-1]))) / 2
    np.testing.assert_allclose(run(folded, x), expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(run(plain, x), expected, atol=1e-3)  # the mirror pass did change the answer
    # and so the folded file cannot tell an image from its mirror image
    np.testing.assert_array_equal(run(folded, x), run(folded, np.ascontiguousarray(x[..., ::-1])))


def test_weights_are_shared_and_the_file_says_what_it_is():
    plain = classifier()
    folded = mirror.fold(plain)
    assert mirror.is_folded(folded) and not mirror.is_folded(plain)
    weights = {i.name for i in plain.graph.initializer}
    assert weights <= {i.name for i in folded.graph.initializer}
    assert len(folded.graph.initializer) == len(weights) + 5  # the Slice's four and the 0.5, no second copy
    assert [o.name for o in folded.graph.output] == ["logits"] and [i.name for i in folded.graph.input] == ["image"]


def test_a_graph_is_not_folded_twice():
    with pytest.raises(ConvzooError, match="not folded twice"):
        mirror.fold(mirror.fold(classifier()))


def test_the_out_of_distribution_features_are_the_plain_passs():
    assert feature_tensors(mirror.fold(classifier())) == feature_tensors(classifier()) == ["logits", "flat"]
