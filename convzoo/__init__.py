"""convzoo: the classic convolutional networks, trained, exported to ONNX, served and demonstrated.

>>> import convzoo
>>> model = convzoo.load("lenet5-fashion")      # verified against its sha256; onnxruntime, no torch
>>> model.predict("shoe.png").label             # doctest: +SKIP

``list_models``, ``load`` and the result types come from ``convzoo.api``, imported on first use so that
``import convzoo`` stays free of onnxruntime for training jobs and the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "list_models", "load", "Model", "Classification", "Segmentation", "Stylized"]

if TYPE_CHECKING:
    from convzoo.api import Classification, Model, Segmentation, Stylized, list_models, load


def __getattr__(name: str) -> Any:
    if name in __all__:
        try:
            from convzoo import api  # noqa: PLC0415 -- the lazy top-level API (PEP 562), not a cycle dodge
        except ModuleNotFoundError as e:  # no ONNX Runtime build: say which extra brings one
            from convzoo import extras  # noqa: PLC0415

            if not (e.name and extras.optional(e.name)):
                raise
            raise extras.missing(e.name, "load", what=f"convzoo.{name}") from None
        return getattr(api, name)
    raise AttributeError(f"module 'convzoo' has no attribute {name!r}")
