"""The model table against the torch side: architectures, measured sizes, labels."""

from __future__ import annotations

import importlib

import pytest
import torch
import torchvision
from torchvision.models._meta import _IMAGENET_CATEGORIES

from convzoo import registry, zoo
from convzoo.models import ARCHITECTURES, MODULES, architectures, build
from convzoo.models.profile import count_macs, count_params

CLASSIFIERS = registry.entries(task="classification")


def _missing_modules() -> list[str]:
    missing = []
    for module in MODULES:
        try:
            importlib.import_module(f"convzoo.models.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"convzoo.models.{module}":
                raise  # the module is there but something it imports is not: show that
            missing.append(f"convzoo/models/{module}.py")
    return missing


def test_every_architecture_module_exists():
    missing = _missing_modules()
    assert not missing, f"convzoo.models.MODULES names modules that do not exist yet: {', '.join(missing)}"


def test_every_entry_names_a_registered_architecture():
    _missing_modules()  # import what exists; the test above reports what does not
    unknown = {e.name: e.arch for e in registry.entries() if e.arch not in ARCHITECTURES}
    assert not unknown, f"entries whose architecture is not registered: {unknown}"


def test_every_registered_architecture_is_used_by_an_entry():
    _missing_modules()
    used = {e.arch for e in registry.entries()}
    assert not set(ARCHITECTURES) - used, f"architectures no entry uses: {sorted(set(ARCHITECTURES) - used)}"


@pytest.mark.parametrize("entry", CLASSIFIERS, ids=lambda e: e.name)
def test_params_and_macs_in_the_table_are_measured(entry):
    with torch.device("meta"):  # FlopCounterMode counts on the meta device: no compute, even for VGG-16
        model = build(entry)
    base = registry.get(entry.base) if entry.base else entry
    assert (entry.params, entry.macs) == (base.params, base.macs)
    measured = (count_params(model), count_macs(model, (1, entry.in_channels, *entry.preprocess.size)))
    # a mirror-averaged file (entry.passes == 2) pays for both passes; the table holds one pass
    assert (entry.params, entry.macs) == (measured[0], measured[1] * entry.passes), \
        f"set zoo.MEASURED[{base.name!r}] = {measured}"


@pytest.mark.parametrize("entry", CLASSIFIERS, ids=lambda e: e.name)
def test_head_has_one_output_per_label(entry):
    with torch.device("meta"):
        model = build(entry).eval()
        logits = model(torch.zeros(2, entry.in_channels, *entry.preprocess.size))
    assert tuple(logits.shape) == (2, len(entry.labels))
    assert len(set(entry.labels)) == len(entry.labels)


def test_imagenet_labels_are_torchvisions():
    assert zoo.IMAGENET == tuple(_IMAGENET_CATEGORIES)
    assert all(e.labels == zoo.IMAGENET for e in CLASSIFIERS if e.dataset == "imagenet")


@pytest.mark.parametrize("entry", [e for e in CLASSIFIERS if e.pretrained], ids=lambda e: e.name)
def test_pretrained_weights_name_torchvisions_enum_of_the_same_model(entry):
    weights = torchvision.models.get_weight(entry.pretrained)
    assert weights.meta["num_params"] == entry.params  # the same model as torchvision's
    assert tuple(weights.meta["categories"]) == entry.labels


def test_small_variants_are_the_fashion_entries():
    small = {name for name in architectures() if name.endswith("_small")}
    assert small <= {e.arch for e in CLASSIFIERS if e.dataset in ("fashion-mnist", "cifar10")}
