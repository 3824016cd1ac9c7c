"""Checkpoints: written atomically, loadable with ``torch.load(path, weights_only=True)``.

Only tensors and plain containers go in (no pickled classes), so a checkpoint from anywhere can be
opened without trusting it; the model's state dict is the plain one (no DDP ``module.`` or
``torch.compile`` ``_orig_mod.`` prefix) on the CPU, ready for ``build(entry).load_state_dict``.
"""

from __future__ import annotations

import io
import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.errors import IntegrityError
from convzoo.registry import atomic_write_bytes
from convzoo.training import BEST, LAST  # noqa: F401 -- the loops name the files from here


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself, under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # contiguous: channels_last weights would otherwise carry their strides into export and evaluation
    return {key: value.detach().cpu().contiguous() for key, value in unwrap(model).state_dict().items()}


def save(path: Path, payload: dict[str, Any]) -> None:
    """Serialise in memory, then temp file + fsync + rename: a kill at any moment leaves the old file or the new."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"no checkpoint at {path}; train first (`convzoo train NAME`) or pass the right file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not a convzoo checkpoint"
        raise IntegrityError(f"{path} is not a readable convzoo checkpoint ({type(e).__name__}: {e}); "
                             f"train again or use another file") from e


def remove_stale_temporaries(folder: Path) -> None:
    """Temp files a killed run left behind (never a checkpoint: those appear only by rename)."""
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def machine(device: torch.device) -> str:
    """What the run ran on, for cards: CPU model and cores, and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu} ({os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads)"
    if device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; host {text}"
    return text
