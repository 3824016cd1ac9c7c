"""Architectures (torch). Each module registers its classes with ``@architecture``; ``build`` makes one
from a registry entry. The table in ``convzoo.zoo`` names them; tests keep the two tables in step."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from convzoo.errors import ConvzooError
from convzoo.models.shuffled import PixelShuffled
from convzoo.types import ModelEntry

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
MODULES = ("lenet", "mlp", "alexnet", "vgg", "googlenet", "resnet", "unet", "style")
T = TypeVar("T", bound=Callable[..., nn.Module])


def architecture(name: str) -> Callable[[T], T]:
    def register(factory: T) -> T:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCHITECTURES[name] = factory
        return factory

    return register


def architectures() -> dict[str, Callable[..., nn.Module]]:
    for module in MODULES:
        importlib.import_module(f"convzoo.models.{module}")
    return ARCHITECTURES


def build(entry: ModelEntry, **overrides) -> nn.Module:
    """The untrained torch model an entry names, sized by its preprocessing and labels."""
    factories = architectures()
    if entry.arch not in factories:
        raise ConvzooError(f"{entry.name}: no architecture {entry.arch!r}; known: {', '.join(sorted(factories))}")
    kwargs = dict(entry.arch_args)
    shuffle_seed = kwargs.pop("pixel_shuffle_seed", None)  # the shuffled-pixels experiment: models/shuffled.py
    if entry.labels:  # a head per label (classes, mask classes); a style net has none and keeps its RGB
        kwargs.update(in_channels=entry.in_channels, num_classes=len(entry.labels))
    kwargs.update(overrides)
    model = factories[entry.arch](**kwargs)
    if shuffle_seed is not None:
        model = PixelShuffled(model, int(shuffle_seed), *entry.preprocess.size)
    return model
