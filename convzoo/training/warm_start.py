"""A run that starts from a stored file's weights instead of random ones (``ClassifierOptions.init_from``):
the way to continue a training that was cut short, here the GPU runs that stopped before their schedules
annealed, on a machine that cannot afford to repeat them.

The ONNX file is the only copy of those weights the project keeps, so they are read back from it. Where the
exporter kept the parameter names (VGG, AlexNet) they load by name. Where it folded a batch norm into the
convolution before it (GoogLeNet), only ``W' = W * gamma / sigma`` and ``b' = beta - mu * gamma / sigma`` are
left, so the pairs are matched in execution order and each batch norm is rebuilt to compute the same function:
its running statistics are measured on real images (mean ``m``, variance ``v`` of ``W'x``) and it is given
``gamma = sqrt(v + eps)``, ``beta = b' + m``, which in evaluation gives back ``W'x + b'`` exactly and, in
training, normalises with batch statistics close to those.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.registry import StoredModel
from convzoo.training import stored_for
from convzoo.types import MIRROR_PASS_PREFIX, ModelEntry


def stored_start(name: str, entry: ModelEntry) -> StoredModel:
    """The stored model ``name``, refused with a sentence unless it is a file of ``entry``'s architecture."""
    found = stored_for("init_from", name)
    if found.entry.arch != entry.arch:
        raise ConvzooError(f"init_from: {name!r} is a {found.entry.arch}, not a {entry.arch}; a run can only start "
                           "from a file of its own architecture")
    return found


def _weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every initializer as float32, also under the name of a Cast that reads it (float16-stored files)."""
    arrays = {init.name: numpy_helper.to_array(init).astype(np.float32) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    return arrays


def _execution_order(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Convolutions, linear layers and batch norms in the order an evaluation forward pass calls them."""
    order: list[tuple[str, nn.Module]] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [module.register_forward_hook(lambda m, i, o: order.append((names[m], m)))
             for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for hook in hooks:
            hook.remove()
    return order


def load_onnx_weights(model: nn.Module, path: str, images: torch.Tensor) -> str:
    """Put the file's weights into ``model``; ``images`` (float, normalised, N x C x H x W) measure the rebuilt
    batch norms' statistics. Returns how the weights were matched ("by name" or "in execution order")."""
    graph = onnx.load(path).graph
    arrays = _weights(graph)
    state = model.state_dict()
    wanted = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if all(k in arrays and tuple(arrays[k].shape) == tuple(v.shape) for k, v in wanted.items()):
        model.load_state_dict({**state, **{k: torch.from_numpy(arrays[k]) for k in wanted}})
        return "by name"

    layers = [(n.op_type, n) for n in graph.node if n.op_type in ("Conv", "Gemm")
              and not n.name.startswith(MIRROR_PASS_PREFIX)]
    order = _execution_order(model, images[:2])
    pending_bn: list[tuple[nn.BatchNorm2d, nn.Conv2d, np.ndarray]] = []
    modules = [(name, m) for name, m in order if not isinstance(m, nn.BatchNorm2d)]
    if len(modules) != len(layers):
        raise ConvzooError(f"init_from: the file has {len(layers)} convolution/linear layers, the network "
                           f"{len(modules)}; it is not a file of this architecture")
    following = {id(order[i][1]): order[i + 1][1] for i in range(len(order) - 1)}
    with torch.no_grad():
        for (name, module), (op, node) in zip(modules, layers, strict=True):
            weight = arrays[node.input[1]]
            bias = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            if op == "Gemm" and not any(a.name == "transB" and a.i == 1 for a in node.attribute):
                weight = weight.T
            if tuple(weight.shape) != tuple(module.weight.shape):
                raise ConvzooError(f"init_from: {name} has weights {tuple(module.weight.shape)}, the file's layer "
                                   f"{node.name} {tuple(weight.shape)}; it is not a file of this architecture")
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            norm = following.get(id(module))
            if module.bias is not None:
                module.bias.copy_(torch.from_numpy(bias))
            elif isinstance(norm, nn.BatchNorm2d) and bias is not None:
                # evaluation computes W'x + b' while the statistics are measured below
                norm.weight.fill_(1.0), norm.running_mean.zero_(), norm.running_var.fill_(1.0 - norm.eps)
                norm.bias.copy_(torch.from_numpy(bias))
                pending_bn.append((norm, module, bias))
            elif bias is not None and np.any(bias):
                raise ConvzooError(f"init_from: the file's {node.name} has a bias that {name} has no place for")
    if pending_bn:
        _refit_batch_norms(model, pending_bn, images)
    return "in execution order, batch norms rebuilt from the folded convolutions"


def _refit_batch_norms(model: nn.Module, pending: list[tuple[nn.BatchNorm2d, nn.Conv2d, np.ndarray]],
                       images: torch.Tensor) -> None:
    sums: dict[int, list[torch.Tensor]] = {id(conv): [] for _, conv, _ in pending}

    def record(conv: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        sums[id(conv)].append(torch.stack([output.sum((0, 2, 3)), (output ** 2).sum((0, 2, 3)),
                                           torch.full((output.shape[1],), output[:, 0].numel(),
                                                      dtype=output.dtype)]).double())

    hooks = [conv.register_forward_hook(record) for _, conv, _ in pending]
    try:
        with torch.no_grad():
            model.eval()
            for start in range(0, len(images), 256):
                model(images[start:start + 256])
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for norm, conv, bias in pending:
            total, squares, count = torch.stack(sums[id(conv)]).sum(0)
            mean = total / count
            var = (squares / count - mean ** 2).clamp_min(0)
            norm.running_mean.copy_(mean.float()), norm.running_var.copy_(var.float())
            norm.weight.copy_(torch.sqrt(var + norm.eps).float())
            norm.bias.copy_(torch.from_numpy(bias) + mean.float())
