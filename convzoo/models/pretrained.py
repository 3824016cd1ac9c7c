"""torchvision's ImageNet weights for the full-size classic models, downloaded or from a local file.

convzoo's ImageNet definitions have torchvision's parameter names and shapes, so torchvision's state
dicts load into them unchanged (`convzoo export alexnet-imagenet --weights torchvision`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.types import ModelEntry

# GoogLeNet's auxiliary heads are in torchvision's weights file; a model built without them skips them.
OPTIONAL_PREFIXES = ("aux1.", "aux2.")


def load_pretrained(entry: ModelEntry, weights: str, model: nn.Module) -> tuple[str, ...]:
    """Load ``weights`` into ``model`` (built from ``entry``) in place and return the class names that
    torchvision ships with the entry's weights, for checking against ``entry.labels``.

    ``weights`` is ``"torchvision"`` (torchvision downloads the file into torch's hub cache, or finds it
    there) or the path of a state-dict file, e.g. one copied from another machine's hub cache.
    """
    if not entry.pretrained:
        raise ConvzooError(f"{entry.name} has no pretrained weights to load: `--weights` is for the ImageNet "
                           f"models (`convzoo list` shows them as *-imagenet); train {entry.name} instead")
    enum = _weights_enum(entry)
    if weights == "torchvision":
        state_dict = _download(entry, enum)
    else:
        state_dict = _read_file(entry, Path(weights).expanduser(), enum)
    _load(entry, model, state_dict)
    if hasattr(model, "transform_input"):
        # GoogLeNet's ImageNet weights (torchvision's, or a copy of them) were ported from the original
        # and expect (x - 0.5) / 0.5 inputs; torchvision turns this on whenever it loads them.
        model.transform_input = True
    return tuple(enum.meta["categories"])


def hub_file(entry: ModelEntry) -> Path:
    """Where torchvision keeps (or would keep) the entry's weights file: torch's hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights_enum(entry).url).name


def _weights_enum(entry: ModelEntry):
    from torchvision.models import get_weight

    try:
        return get_weight(entry.pretrained)
    except (ValueError, KeyError, AttributeError) as error:
        raise ConvzooError(f"{entry.name}: this torchvision has no weights {entry.pretrained!r} ({error}); "
                           f"upgrade torchvision (`pip install -U torchvision`)") from None


def _download(entry: ModelEntry, enum) -> dict[str, torch.Tensor]:
    try:
        return enum.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash is a RuntimeError
        target = hub_file(entry)
        raise ConvzooError(
            f"{entry.name}: could not get torchvision's {entry.pretrained} weights ({error}). Without a network, "
            f"download {enum.url} on a machine that has one and either put it at {target} (torch's hub cache, "
            f"where `--weights torchvision` looks first) or pass its path: `--weights FILE`") from None


def _read_file(entry: ModelEntry, path: Path, enum) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConvzooError(f"{entry.name}: no weights file at {path}. Pass a state-dict file (torchvision's is "
                           f"{enum.url}) or `--weights torchvision` to download it")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: pickle, zip and torch errors all differ
        raise ConvzooError(f"{entry.name}: {path} is not a PyTorch state-dict file ({type(error).__name__}: "
                           f"{error}); torchvision's is {enum.url}") from None
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ConvzooError(f"{entry.name}: {path} holds a {type(state_dict).__name__}, not a state dict "
                           f"(parameter name -> tensor); torchvision's file is {enum.url}")
    return state_dict


def _load(entry: ModelEntry, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    state_dict = {k: v for k, v in state_dict.items()
                  if k in expected or not k.startswith(OPTIONAL_PREFIXES)}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or misshapen:
        problems = []
        if missing:
            problems.append(f"{len(missing)} keys missing ({_some(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        if misshapen:
            problems.append(f"{len(misshapen)} keys of another shape (" + ", ".join(
                f"{k}: {tuple(state_dict[k].shape)}, not {tuple(expected[k].shape)}" for k in misshapen[:3])
                + (", ..." if len(misshapen) > 3 else "") + ")")
        raise ConvzooError(f"{entry.name}: these weights are not for {entry.arch}: {'; '.join(problems)}. "
                           f"Use torchvision's {entry.pretrained} weights or a state dict of the same model")
    model.load_state_dict(state_dict, strict=True)


def _some(keys: list[str], shown: int = 4) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")
