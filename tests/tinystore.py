"""A tiny model store built with onnx.helper (no torch, no training): one model per task, real
convzoo metadata and manifests, so serving and demo tests run in seconds and without the shipped zoo."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from convzoo import registry
from convzoo.packaging import write_model

OPSET = 17


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def tiny_classifier(in_channels: int, size: tuple[int, int], classes: int, seed: int = 0) -> onnx.ModelProto:
    """conv 3x3 -> relu -> global average pool -> linear: logits that depend on the image."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["logits"], transB=1),
    ]
    inits = [_init("w1", rng.normal(0, 0.5, (8, in_channels, 3, 3))), _init("b1", rng.normal(0, 0.1, 8)),
             _init("w2", rng.normal(0, 1.0, (classes, 8))), _init("b2", np.zeros(classes))]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", in_channels, *size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def tiny_segmenter(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["mask_logits"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "tiny_segmenter",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        [helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
        [_init("w", rng.normal(0, 1, (2, 1, 3, 3))), _init("b", np.zeros(2))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def tiny_stylizer() -> onnx.ModelProto:
    """255 - pixel: an 'inverting' style, easy to check."""
    nodes = [helper.make_node("Sub", ["c255", "image"], ["image_out"])]
    graph = helper.make_graph(
        nodes, "tiny_stylizer",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("image_out", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [_init("c255", np.array(255.0))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def build_tiny_store(root: Path) -> registry.Store:
    """``tiny-fashion`` (classification, 1x28x28), ``tiny-cifar`` (3x32x32), ``tiny-membranes``, ``tiny-style``."""
    fashion = registry.get("lenet5-fashion")
    cifar = registry.get("resnet18-cifar10")
    unet = registry.get("unet-membranes")
    style = registry.get("style-starry-night")
    specs = [
        (dataclasses.replace(fashion, name="tiny-fashion"), tiny_classifier(1, (28, 28), 10)),
        (dataclasses.replace(cifar, name="tiny-cifar"), tiny_classifier(3, (32, 32), 10, seed=1)),
        (dataclasses.replace(unet, name="tiny-membranes"), tiny_segmenter()),
        (dataclasses.replace(style, name="tiny-style"), tiny_stylizer()),
    ]
    for entry, model in specs:
        write_model(root, entry, model, metrics={"note": "untrained test model"}, manifest_extra={},
                    source={"dataset": "none", "note": "tests/tinystore.py"})
    return registry.Store(root)
