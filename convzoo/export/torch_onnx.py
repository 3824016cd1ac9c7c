"""torch -> ONNX (needs torch): export, full checker, parity against PyTorch on real inputs, metadata, store.

``export_entry`` is what `convzoo export NAME` runs. The ONNX file gets the ``convzoo.*`` metadata
(see ``convzoo.packaging``), a test_data_set_0 of real inputs, and is written atomically into the store.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from convzoo import datasets, registry, tasks
from convzoo.errors import ConvzooError
from convzoo.evaluation import measure, pictures
from convzoo.export import mirror
from convzoo.export.inputs import sample_inputs
from convzoo.models import architectures, build
from convzoo.packaging import metadata_props, provenance, set_metadata, write_model
from convzoo.training import best_checkpoint, checkpoints
from convzoo.registry import StoredModel
from convzoo.types import ModelEntry
from convzoo.runtime import OnnxModel, cpu_session

OPSET = 17
PARITY_ATOL = 1e-4
PARITY_N = 256
TEST_DATA_N = 8


def prepare_model(entry: ModelEntry, checkpoint: str | Path | None, weights: str | None) -> tuple[torch.nn.Module, dict]:
    """The torch model with its trained weights, and what is known about how they were trained."""
    if entry.quantization:
        raise ConvzooError(f"{entry.name} is made from {entry.base} by `convzoo quantize {entry.base}`, not exported")
    model = build(entry)
    if weights:
        from convzoo.models.pretrained import load_pretrained

        if not entry.pretrained:
            raise ConvzooError(f"{entry.name} has no published weights; --weights is for the *-imagenet models")
        categories = load_pretrained(entry, weights, model)
        if categories and list(categories) != list(entry.labels):
            raise ConvzooError(f"{entry.name}: the weights' class names differ from the entry's labels")
        return model.eval(), {"weights": entry.pretrained if weights == "torchvision" else str(weights),
                              "data": "ImageNet-1k (torchvision's published weights)"}
    path = Path(checkpoint) if checkpoint else best_checkpoint(entry.name)
    state = checkpoints.load(path)
    if state.get("entry") not in (None, entry.name):
        raise ConvzooError(f"{path} is a checkpoint of {state['entry']!r}, not of {entry.name!r}")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise ConvzooError(f"{path} does not fit {entry.name}'s architecture: {str(e)[:300]}") from e
    training = {key: state[key] for key in ("epoch", "step", "seconds", "device", "machine", "recipe") if key in state}
    if "metrics" in state:
        training["checkpoint_metrics"] = state["metrics"]
    for key in ("teacher", "init_from"):  # which files taught it and started it, by sha256
        if isinstance(state.get("data"), dict) and state["data"].get(key):
            training[key] = state["data"][key]
    training["checkpoint"] = str(path)
    return model.eval(), training


def to_onnx(model: torch.nn.Module, entry: ModelEntry, example: torch.Tensor) -> onnx.ModelProto:
    output_name = tasks.get(entry.task).output_name
    axes = {0: "batch"} if entry.preprocess.size else {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; it works on torch 2.11-2.14
        torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=[output_name],
                          dynamic_axes={"image": axes, output_name: axes if output_spatial(entry) else {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def store_weights_as_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-size file, same arithmetic: float weights are stored as float16 and cast back to float32
    by a Cast node (onnxruntime folds it at load), so inference still runs in float32."""
    from onnx import helper, numpy_helper

    graph = model.graph
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) < 2:
            continue  # small vectors (biases, norm scales) are not worth a node each
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        graph.node.insert(0, helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                              name=f"{init.name}_to_fp32"))
    return model


def output_spatial(entry: ModelEntry) -> bool:
    """Does the first output keep the input's height and width (a mask, an image), not one row per image?"""
    return entry.preprocess.size is None


def parity(model: torch.nn.Module, session, x: np.ndarray, entry: ModelEntry) -> tuple[dict[str, Any], np.ndarray]:
    """Max abs difference and the task's argmax agreement between PyTorch and onnxruntime; also the ONNX outputs."""
    name = session.get_inputs()[0].name
    chunk = 1 if output_spatial(entry) else 32
    ort_out, torch_out = [], []
    with torch.inference_mode():
        for i in range(0, len(x), chunk):
            ort_out.append(session.run(None, {name: x[i:i + chunk]})[0])
            torch_out.append(model(torch.from_numpy(x[i:i + chunk])).float().numpy())
    a, b = np.concatenate(ort_out), np.concatenate(torch_out)
    result: dict[str, Any] = {"n": int(len(x)), "max_abs_diff": float(np.abs(a - b).max())}
    agreement = tasks.get(entry.task).agreement
    if agreement:
        result[agreement] = float((a.argmax(1) == b.argmax(1)).mean())
    return result, a


def test_data(session, x: np.ndarray, outputs: np.ndarray, entry: ModelEntry) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX Model Zoo's test_data_set_0: 8 real images for a classifier; for the fully convolutional
    models one 128x128 crop, which keeps the shipped store small."""
    if not output_spatial(entry):
        return x[:TEST_DATA_N], outputs[:TEST_DATA_N]
    crop = np.ascontiguousarray(x[:1, :, :128, :128])
    return crop, session.run(None, {session.get_inputs()[0].name: crop})[0]


def export_entry(entry: ModelEntry, *, checkpoint: str | Path | None = None, weights: str | None = None,
                 store_root: str | Path | None = None, data_dir: str | Path | None = None,
                 skip_parity: bool = False, evaluate_after: bool = True) -> StoredModel:
    model, training = prepare_model(entry, checkpoint, weights)
    half_storage = tasks.get(entry.task).half_storage
    if half_storage:  # round the trained weights once, so PyTorch and ONNX compute with the same numbers
        model = model.half().float()
        training["weights_storage"] = "float16 (rounded from the trained float32 weights; computed in float32)"
    n = 4 if output_spatial(entry) else PARITY_N
    x, inputs_desc = sample_inputs(entry, n, data_dir=data_dir)
    onnx_model = to_onnx(model, entry, torch.from_numpy(x[:1]))
    if half_storage:
        onnx_model = store_weights_as_float16(onnx_model)
    onnx.checker.check_model(onnx_model, full_check=True)
    session = cpu_session(onnx_model)  # one session serves the parity check and the test data
    check, outputs = parity(model, session, x, entry)
    check["inputs"] = inputs_desc
    check["atol"] = PARITY_ATOL
    atol = PARITY_ATOL * (entry.output.range[1] if entry.output.range else 1)  # a style net's pixels: 0..255
    failed = check["max_abs_diff"] > atol or check.get("top1_agreement", 1.0) < 1.0
    if failed and not skip_parity:
        raise ConvzooError(f"{entry.name}: ONNX Runtime disagrees with PyTorch ({check}); the export was not written")
    test_time = {}
    if entry.passes == 2:  # parity holds for one pass (above); the file then averages it with the mirror pass
        onnx_model = mirror.fold(onnx_model)
        session = cpu_session(onnx_model)
        outputs = session.run(None, {session.get_inputs()[0].name: x[:TEST_DATA_N]})[0]
        test_time = {"test_time": mirror.TEST_TIME}
    from convzoo.models.profile import count_macs, count_params

    size = entry.preprocess.size or (256, 256)
    params = count_params(model)
    macs = count_macs(model, (1, entry.in_channels, *size))
    factory = architectures()[entry.arch]
    size_multiple = getattr(model, "size_multiple", 1)
    manifest_extra = {"parity": check, "training": training, "params": params, "macs": macs * entry.passes,
                      "macs_input": list(size), "arch_doc": (factory.__doc__ or "").strip(),
                      "credit": datasets.get(entry.dataset).credit}
    root = Path(store_root) if store_root else registry.write_root()
    source = provenance(entry, epochs=training.get("epoch"), weights=training.get("weights"), **test_time)
    metrics, add_files = {}, None
    if evaluate_after and datasets.get(entry.dataset).local_test:
        metrics, add_files = evaluated(entry, onnx_model, source, size_multiple, data_dir)
    return write_model(root, entry, onnx_model, metrics=metrics, manifest_extra=manifest_extra, source=source,
                       test_data=test_data(session, x, outputs, entry), size_multiple=size_multiple,
                       add_files=add_files)


def evaluated(entry: ModelEntry, onnx_model: onnx.ModelProto, source: dict[str, Any], size_multiple: int,
              data_dir: str | Path | None) -> tuple[dict[str, Any], Any]:
    """The test metrics of the file about to be written (its bytes, with its metadata, in onnxruntime), and
    what draws its pictures, so that the store is written once; nothing when the data is not here."""
    set_metadata(onnx_model, metadata_props(entry, {}, source, size_multiple))
    model = OnnxModel(onnx_model.SerializeToString())
    try:
        metrics, confusion = measure(entry, model, data_dir)
    except ConvzooError as e:
        print(f"convzoo: exported, but not evaluated: {e}")
        return {}, None
    return metrics, pictures(entry.name, model.labels, metrics, confusion)
