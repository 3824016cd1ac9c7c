"""One training skeleton: every task refuses to resume a changed recipe, takes the optimizer and schedule
its recipe names, and refuses options it does not know."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from convzoo import registry
from convzoo.errors import ConvzooError, EntryError
from convzoo.training import skeleton
from convzoo.types import Recipe, training_options


def tiny_style():
    entry = dataclasses.replace(registry.get("style-great-wave"), arch_args={"widths": [4, 8, 8], "blocks": 1})
    recipe = dataclasses.replace(entry.recipe, batch_size=2, options={
        **entry.recipe.options, "image_size": 32, "style_size": 64, "steps": 2, "log_every": 1,
        "checkpoint_every": 1, "loss_network": "random-vgg"})
    return entry, recipe


def tiny_unet():
    entry = dataclasses.replace(registry.get("unet-membranes"), arch_args={
        **registry.get("unet-membranes").arch_args, "width": 4, "depth": 2})
    recipe = dataclasses.replace(entry.recipe, epochs=2, batch_size=2, val_split=2, options={
        **entry.recipe.options, "tile": 32, "steps_per_epoch": 1, "synthetic_size": 64})
    return entry, recipe


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "style"])
def test_every_task_refuses_to_resume_a_changed_recipe(tmp_path, task):
    from convzoo.training import train

    entry, recipe = tiny_unet() if task == "segmentation" else tiny_style()
    data = "synthetic:6" if task == "segmentation" else None
    train(entry, recipe, out_dir=tmp_path, device="cpu", max_steps=1, data_dir=data)
    changed = dataclasses.replace(recipe, lr=recipe.lr * 2)
    with pytest.raises(ConvzooError, match="the recipe differs"):
        train(entry, changed, out_dir=tmp_path, device="cpu", resume=True, data_dir=data)
    train(entry, recipe, out_dir=tmp_path, device="cpu", resume=True, data_dir=data)  # the same recipe resumes


def test_the_optimizer_is_the_one_the_recipe_names():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    for name, kind in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        optimizer = skeleton.make_optimizer(model, Recipe(optimizer=name, lr=0.01, weight_decay=0.1))
        assert type(optimizer) is kind
        assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]  # no decay on biases and scales


def test_schedules_with_and_without_warm_up():
    def lrs(recipe, warmup=0, steps=10):
        optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=recipe.lr)
        scheduler = skeleton.make_scheduler(optimizer, recipe, steps, warmup)
        out = []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    cosine = lrs(Recipe(lr=1.0, schedule="cosine"))
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True)
    warm = lrs(Recipe(lr=1.0, schedule="cosine"), warmup=4)
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0] and warm[4:] == sorted(warm[4:], reverse=True)
    assert lrs(Recipe(lr=1.0, schedule="constant")) == [1.0] * 10
    one = lrs(Recipe(lr=1.0, schedule="onecycle", options={"warmup": 0.3}))
    assert max(one) == pytest.approx(1.0, rel=0.05) and one[0] < 0.1 and one[-1] < 0.01


def test_a_misspelt_or_mistyped_option_is_refused_with_the_known_ones():
    with pytest.raises(EntryError, match="unknown segmentation option.*membrane_wieght.*membrane_weight"):
        training_options("segmentation", {"membrane_wieght": 2.0})
    with pytest.raises(EntryError, match="option steps must be int"):
        training_options("style", {"steps": "many"})
    with pytest.raises(EntryError, match="unknown classification option"):
        dataclasses.replace(registry.get("lenet5-fashion"),
                            recipe=dataclasses.replace(registry.get("lenet5-fashion").recipe, options={"fliP_p": 0.5}))
    assert training_options("classification", {"flip_p": 1}).flip_p == 1


def test_every_zoo_recipe_has_typed_options():
    for entry in registry.entries():
        training_options(entry.task, entry.recipe.options)
