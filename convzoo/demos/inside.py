"""Inside a trained CNN, read from its ONNX file alone (onnx + onnxruntime, no torch).

The first convolution's weights are its filters. Its feature maps, and the second convolution's, are
intermediate tensors: we cut the graph down to the nodes that compute them and make those tensors the
graph's outputs, so even a VGG only runs its first two layers here.
A layer's map is taken after what directly follows its convolution (batch norm, ReLU and the like),
before any pooling: what the next layer sees, at full resolution.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from convzoo.errors import BadInputError, IntegrityError
from convzoo.types import ModelMetadata, Preprocess

# ops that keep a map a map: followed from a convolution's output until something else (pooling, a
# second branch, the next conv) takes over; Q/DQ pairs appear in statically quantized (INT8) models
PER_PIXEL = {"BatchNormalization", "Relu", "LeakyRelu", "PRelu", "Clip", "Elu", "Selu", "Sigmoid", "Tanh",
             "HardSigmoid", "HardSwish", "LRN", "QuantizeLinear", "DequantizeLinear"}
MAX_MAPS = 16  # a screenful; AlexNet's 64 first-layer maps would each be too small to read


@dataclass(frozen=True)
class Layer:
    """One convolution as seen from the file: its node, its output map tensor, what follows it."""

    conv: str  # node name (or its output when unnamed)
    output: str  # tensor holding the map: after BN/ReLU/..., before pooling
    ops: tuple[str, ...]  # Conv and the per-pixel ops folded into the map, e.g. ("Conv", "Relu")
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    filters: int

    @property
    def description(self) -> str:
        k = "x".join(map(str, self.kernel))
        s = f", stride {self.stride[0]}" if self.stride and max(self.stride) > 1 else ""
        return f"{self.filters} filters of {k}{s}, then {' → '.join(self.ops[1:]) or 'nothing'}"


@dataclass
class Probe:
    """A classifier's first two convolutions, ready to run on preprocessed inputs."""

    name: str
    preprocess: Preprocess
    labels: list[str]
    weights: np.ndarray  # first layer, (F, C, kh, kw)
    layers: list[Layer]  # one or two
    session: ort.InferenceSession
    input_name: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The maps of each layer for a 1xCxHxW batch, each ``(F, H', W')``."""
        outputs = self.session.run([layer.output for layer in self.layers],
                                   {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return [np.asarray(o, np.float32)[0] for o in outputs]


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _follow(conv: onnx.NodeProto, users: dict[str, list[onnx.NodeProto]],
            graph_outputs: set[str]) -> tuple[str, tuple[str, ...]]:
    tensor, ops = conv.output[0], ["Conv"]
    while tensor not in graph_outputs:
        nxt = users.get(tensor, [])
        if len(nxt) != 1 or nxt[0].op_type not in PER_PIXEL:
            break
        if nxt[0].op_type == "QuantizeLinear":  # its output is int8: only step over a whole Q/DQ pair
            after = users.get(nxt[0].output[0], [])
            if len(after) != 1 or after[0].op_type != "DequantizeLinear":
                break
            tensor = after[0].output[0]
            ops.append("int8 round trip")  # a ReLU before it is often folded into the quantization range
            continue
        tensor = nxt[0].output[0]
        ops.append(nxt[0].op_type)
    return tensor, tuple(ops)


def _attribute(node: onnx.NodeProto, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    for attr in node.attribute:
        if attr.name == name:
            return tuple(attr.ints)
    return default


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def cut(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """The part of ``model`` that computes ``outputs``, with those tensors as its graph outputs."""
    graph = model.graph
    needed, kept = set(outputs), []
    for node in reversed(graph.node):  # nodes are in topological order: walk back from the outputs
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    try:
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    except Exception:  # noqa: BLE001 -- shapes are a nicety here; onnxruntime does not need them
        inferred = {}
    value_infos = [inferred.get(name) or helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                   for name in outputs]
    small = helper.make_graph(kept, f"{graph.name}-first-layers", [i for i in graph.input if i.name in needed],
                              value_infos, [init for init in graph.initializer if init.name in needed])
    cut_model = helper.make_model(small, opset_imports=model.opset_import, ir_version=model.ir_version)
    return cut_model


CONV_OPS = {"Conv", "ConvInteger", "QLinearConv"}


def has_convolution(path: Path | str) -> bool:
    """Whether the file has a convolution to look inside (an MLP has none): the graph's ops, without its weights'
    meaning, read in a few milliseconds."""
    try:
        return any(node.op_type in CONV_OPS for node in onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001 -- a file onnx cannot read is reported when someone picks it, not here
        return True


def probe_model(path: Path | str, name: str | None = None) -> Probe:
    """Find the first two convolutions of the ONNX classifier at ``path`` and build the cut-down session."""
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and friends
        raise IntegrityError(f"{path} is not an ONNX file onnx can read: {e}") from e
    graph = model.graph
    # the one typed reader of the convzoo.* keys: a file without them is refused in its sentence
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, where=str(path))
    initializers = {init.name for init in graph.initializer}
    image_input = next(i.name for i in graph.input if i.name not in initializers)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    if not convs:
        raise BadInputError(f"{name or path.name} has no Conv node: there are no filters to show")
    users, outputs = _consumers(graph), {o.name for o in graph.output}
    found = [(conv, *_follow(conv, users, outputs)) for conv in convs[:2]]
    weights = [_constant(graph, conv.input[1]) for conv, _, _ in found]
    # INT8 models compute their weights (DequantizeLinear of int8 constants): ask onnxruntime for them
    computed = [conv.input[1] for (conv, _, _), w in zip(found, weights) if w is None]
    small = cut(model, [tensor for _, tensor, _ in found] + computed)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2  # the demo shares a small CPU with everything else
    session = ort.InferenceSession(small.SerializeToString(), options, providers=["CPUExecutionProvider"])
    preprocess = meta.preprocess
    if computed:
        dummy = np.zeros((1, preprocess.channels, *(preprocess.size or (32, 32))), np.float32)
        values = dict(zip(computed, session.run(computed, {image_input: dummy})))
        weights = [values[conv.input[1]] if w is None else w for (conv, _, _), w in zip(found, weights)]
    layers = [Layer(conv=conv.name or conv.output[0], output=tensor, ops=ops,
                    kernel=_attribute(conv, "kernel_shape", tuple(w.shape[2:])),
                    stride=_attribute(conv, "strides", (1,) * (w.ndim - 2)), filters=int(w.shape[0]))
              for (conv, tensor, ops), w in zip(found, weights)]
    return Probe(name=name or meta.name or path.parent.name, preprocess=preprocess,
                 labels=list(meta.labels), weights=np.asarray(weights[0], np.float32),
                 layers=layers, session=session, input_name=image_input)


_CACHE: dict[tuple[str, str], Probe] = {}
_LOCK = threading.Lock()


def probe_stored(store, name: str) -> Probe:
    """``probe_model`` for a model in the store, verified against its sha256 and built once."""
    stored = store.get(name)
    stored.verify()
    key = (str(stored.onnx_path), stored.sha256)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = probe_model(stored.onnx_path, name)
        return _CACHE[key]
