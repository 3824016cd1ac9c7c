"""A Triton Inference Server model repository from the store: ``DIR/NAME/config.pbtxt`` + ``DIR/NAME/1/model.onnx``.

onnx only, no torch (this module is imported by path as well as through ``convzoo.export``). The
config follows Triton's ``model_config.proto`` (text format): platform ``onnxruntime_onnx``, the
graph's inputs and outputs without the batch dimension (Triton adds it from ``max_batch_size``),
-1 for the other dynamic dimensions, dynamic batching on, and a labels file on a classifier's
output so Triton's classification extension answers with class names, as ``convzoo serve`` does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import onnx

from convzoo import tasks
from convzoo.errors import ConvzooError
from convzoo.registry import Store, atomic_write_text, staged_model_folder, validate_name
from convzoo.types import ModelMetadata

ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64", onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.STRING: "TYPE_STRING", onnx.TensorProto.BFLOAT16: "TYPE_BF16",
}
LABELS_FILE = "labels.txt"


def graph_tensors(model: onnx.ModelProto) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(name, Triton datatype, dims with -1 for dynamic) of the graph's real inputs and its outputs."""
    initializers = {init.name for init in model.graph.initializer}

    def describe(value: onnx.ValueInfoProto) -> tuple[str, str, list[int]]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
        return value.name, ONNX_TO_TRITON.get(tensor.elem_type, f"TYPE_UNKNOWN_{tensor.elem_type}"), dims

    inputs = [describe(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [describe(v) for v in model.graph.output]


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string with raw UTF-8 is a valid text-format string


def config_pbtxt(name: str, model: onnx.ModelProto, *, max_batch: int = 32, delay_us: int = 2000,
                 labels: Sequence[str] = ()) -> str:
    inputs, outputs = graph_tensors(model)
    batched = all(dims and dims[0] == -1 for _, _, dims in inputs + outputs)
    lines = [f"name: {_quote(name)}", 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch if batched else 0}"]

    def block(kind: str, tensors, with_labels: bool) -> None:
        lines.append(f"{kind} [")
        for i, (tensor_name, datatype, dims) in enumerate(tensors):
            shown = dims[1:] if batched else dims
            lines.extend(["  {", f"    name: {_quote(tensor_name)}", f"    data_type: {datatype}",
                          f"    dims: [ {', '.join(str(d) for d in shown)} ]"])
            if with_labels and i == 0 and labels and shown == [len(labels)]:
                lines.append(f'    label_filename: "{LABELS_FILE}"')
            lines.append("  }" + ("," if i < len(tensors) - 1 else ""))
        lines.append("]")

    block("input", inputs, with_labels=False)
    block("output", outputs, with_labels=True)
    if batched:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {delay_us}", "}"]
    lines += ["instance_group [ { count: 1, kind: KIND_AUTO } ]"]
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, where=name).to_props()
    for key in ("convzoo.name", "convzoo.task", "convzoo.preprocess", "convzoo.output"):
        if key in metadata:  # the preprocessing contract travels with the model
            lines += ["parameters {", f"  key: {_quote(key)}",
                      f"  value: {{ string_value: {_quote(metadata[key])} }}", "}"]
    return "\n".join(lines) + "\n"


def write_triton_repository(store: Store, out_dir: Path | str, names: Sequence[str] | None = None, *,
                            max_batch: int = 32, delay_us: int = 2000) -> list[Path]:
    """Write one Triton model folder per stored model (all of them when ``names`` is None); return the folders.

    Each file is checked against its manifest's sha256 first, and each model folder appears whole
    or not at all (built aside, then renamed into place).
    """
    out_dir = Path(out_dir)
    chosen = list(names) if names else store.names()
    if not chosen:
        roots = ", ".join(map(str, store.roots))
        raise ConvzooError(f"the store ({roots}) holds no models to put in a Triton repository")
    written = []
    for name in chosen:
        validate_name(name)
        stored = store.get(name)
        stored.verify()
        model = onnx.load(str(stored.onnx_path), load_external_data=False)
        labels = list(stored.entry.labels) if tasks.get(stored.task).top_k else []
        config = config_pbtxt(name, model, max_batch=max_batch, delay_us=delay_us, labels=labels)
        written.append(_write_model_folder(out_dir, name, stored.onnx_path, config,
                                           labels if f'"{LABELS_FILE}"' in config else []))
    return written


def _write_model_folder(out_dir: Path, name: str, onnx_path: Path, config: str, labels: Sequence[str]) -> Path:
    with staged_model_folder(out_dir, name) as staging:  # replaced in one rename, as the model store is
        (staging / "1").mkdir()
        shutil.copyfile(onnx_path, staging / "1" / "model.onnx")
        atomic_write_text(staging / "config.pbtxt", config)
        if labels:
            atomic_write_text(staging / LABELS_FILE, "\n".join(labels) + "\n")
    return out_dir / name
