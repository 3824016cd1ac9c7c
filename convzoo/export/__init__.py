"""From a trained model to files others run: ONNX export (``torch_onnx``, needs torch), the static INT8
twin (``quantize``), test-time mirror averaging folded into a graph (``mirror``) and the Triton model
repository (``triton``), the last three onnx/onnxruntime only.

``export_entry`` and friends are looked up lazily, so that importing ``convzoo.export.quantize`` or
``convzoo.export.triton`` does not import torch.
"""

from __future__ import annotations

from typing import Any

_TORCH_SIDE = ("export_entry", "prepare_model", "to_onnx", "parity", "store_weights_as_float16",
               "test_data", "OPSET", "PARITY_ATOL", "PARITY_N")


def __getattr__(name: str) -> Any:
    if name in _TORCH_SIDE:
        from convzoo.export import torch_onnx

        return getattr(torch_onnx, name)
    raise AttributeError(f"module 'convzoo.export' has no attribute {name!r}")
