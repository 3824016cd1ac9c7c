"""The optional dependencies, by extra, and the one sentence a missing one ends in. Standard library only.

``pip install convzoo`` is numpy, Pillow and rich; everything else is an extra (pyproject.toml, which
tests/test_extras.py keeps in step with this table). A command or API call that meets a missing
module says which extra brings it, instead of a ``ModuleNotFoundError`` traceback:

    convzoo: error: `convzoo serve` needs fastapi, uvicorn and onnxruntime, which are not installed here:
    pip install 'convzoo[cpu,serve]' (or 'convzoo[gpu,serve]' for CUDA)
"""

from __future__ import annotations

import importlib.util

from convzoo.errors import ConvzooError

# extra -> the modules it brings that convzoo imports (module names, not distribution names). The ONNX
# Runtime build is two extras, cpu and gpu, that install the same module: RUNTIME names both.
EXTRAS: dict[str, tuple[str, ...]] = {
    "cpu": ("onnxruntime",),
    "gpu": ("onnxruntime",),
    "serve": ("fastapi", "starlette", "uvicorn", "httptools", "prometheus_client", "multipart", "orjson"),
    "demo": ("gradio", "matplotlib", "skimage", "onnx", "huggingface_hub"),
    "eval": ("onnx", "huggingface_hub", "matplotlib", "skimage"),
    "hub": ("huggingface_hub",),
    "train": ("torch", "torchvision", "onnx", "onnxscript", "tqdm", "matplotlib", "skimage", "huggingface_hub"),
}
RUNTIME = "onnxruntime"
DISTRIBUTIONS = {"skimage": "scikit-image", "prometheus_client": "prometheus-client", "multipart": "python-multipart",
                 "huggingface_hub": "huggingface_hub", "onnxruntime": "onnxruntime"}

# what each command (or API call) imports from the extras, whether it runs models (then it needs an ONNX Runtime
# build too), and the extra to name
NEEDS: dict[str, tuple[tuple[str, ...], bool, str | None]] = {
    "serve": (("fastapi", "uvicorn", "prometheus_client", "multipart", "orjson"), True, "serve"),
    "demo": (("gradio", "matplotlib", "skimage", "onnx", "huggingface_hub"), True, "demo"),
    "eval": ((), True, "eval"),  # measuring needs onnxruntime alone; recording and the plot say what they lack
    "quantize": (("onnx", "huggingface_hub"), True, "eval"),
    "card": (("onnx", "huggingface_hub"), False, "eval"),
    "triton": (("onnx",), False, "eval"),
    "push": (("huggingface_hub",), False, "hub"),
    "pull": (("huggingface_hub",), False, "hub"),
    "train": (("torch", "torchvision", "tqdm"), False, "train"),
    "export": (("torch", "onnx", "onnxscript", "huggingface_hub"), True, "train"),
    "bench": (("onnx",), True, "eval"),  # PyTorch's column is left out where torch is missing
    "load": ((), True, None),
}


class MissingExtraError(ConvzooError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def optional(module: str) -> bool:
    """Is ``module`` (or the package it belongs to) one of the optional dependencies?"""
    top = module.split(".")[0]
    return any(top in modules for modules in EXTRAS.values())


def absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None  # None too where sys.modules[module] is None
    except (ImportError, ValueError):
        return True


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def extra_for(module: str, command: str) -> str | None:
    """The extra that brings ``module`` for ``command``: the command's own when it holds it, else the first."""
    top = module.split(".")[0]
    own = NEEDS.get(command, ((), False, None))[2]
    if own and top in EXTRAS[own]:
        return own
    return next((extra for extra, modules in EXTRAS.items() if top in modules and extra not in ("cpu", "gpu")), None)


def missing(module: str, command: str, what: str | None = None) -> MissingExtraError:
    """The error for ``command`` (a key of ``NEEDS``) having met the missing ``module``: it names every module
    that the command needs and lacks, and the one ``pip install`` that brings them all."""
    top = module.split(".")[0]
    modules, runs_models, _ = NEEDS.get(command, ((), False, None))
    wanted = [*modules, RUNTIME] if runs_models else list(modules)
    lacking = [m for m in wanted if m == top or absent(m)]
    if top not in lacking:
        lacking.insert(0, top)
    extras = sorted({extra_for(m, command) for m in lacking if m != RUNTIME} - {None})
    names = [DISTRIBUTIONS.get(m, m) for m in lacking]
    what = what or f"`convzoo {command}`"
    verb = "is" if len(names) == 1 else "are"
    if RUNTIME in lacking:
        cpu, gpu = ",".join(["cpu", *extras]), ",".join(["gpu", *extras])
        install = f"pip install 'convzoo[{cpu}]' (or 'convzoo[{gpu}]' for CUDA)"
    else:
        install = f"pip install 'convzoo[{','.join(extras)}]'" if extras else f"pip install {names[0]}"
    return MissingExtraError(f"{what} needs {_and(names)}, which {verb} not installed here: {install}", name=top)
