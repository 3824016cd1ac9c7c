"""The one training loop serves every task: segmentation and style runs resume exactly, as classifier
runs do (tests/test_training.py), and run in two processes with identical weights."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convzoo import registry
from convzoo.data.membranes import synthetic_sections, write_pairs
from convzoo.training.segmentation import train_segmentation
from convzoo.training.style import train_style

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit comparisons need one fixed thread count
    yield
    torch.set_num_threads(before)


def tiny_unet() -> tuple:
    entry = dataclasses.replace(registry.get("unet-membranes"), arch_args={"depth": 2, "width": 4, "padding": "same"})
    recipe = dataclasses.replace(entry.recipe, epochs=3, batch_size=2, val_split=2,
                                 options={**entry.recipe.options, "tile": 32, "steps_per_epoch": 2})
    return entry, recipe


def tiny_style() -> tuple:
    entry = dataclasses.replace(registry.get("style-great-wave"), arch_args={"widths": [4, 8, 8], "blocks": 1})
    recipe = dataclasses.replace(entry.recipe, batch_size=2, options={
        **entry.recipe.options, "image_size": 32, "style_size": 64, "steps": 6, "log_every": 2,
        "checkpoint_every": 2, "loss_network": "random-vgg"})
    return entry, recipe


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_segmentation_run_stopped_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    entry, recipe = tiny_unet()
    data = write_pairs(synthetic_sections(n=5, size=64, seed=0), tmp_path / "pairs")
    straight = train_segmentation(entry, recipe, data_dir=data, out_dir=tmp_path / "straight", device="cpu")
    train_segmentation(entry, recipe, data_dir=data, out_dir=tmp_path / "split", device="cpu", max_steps=3)
    assert torch.load(tmp_path / "split" / entry.name / "last.pt", weights_only=True)["batch"] == 1  # mid-epoch
    resumed = train_segmentation(entry, recipe, data_dir=data, out_dir=tmp_path / "split", device="cpu", resume=True)
    assert same(weights(straight.parent / "last.pt"), weights(resumed.parent / "last.pt"))
    state = torch.load(resumed, weights_only=True)
    assert state["selection"] == "val_pixel_error" and state["best"] == state["metrics"]["val_pixel_error"]
    assert "val_rand_error" in state["metrics"]


@pytest.mark.slow
def test_a_style_run_stopped_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    entry, recipe = tiny_style()
    straight = train_style(entry, recipe, out_dir=tmp_path / "straight", device="cpu")
    train_style(entry, recipe, out_dir=tmp_path / "split", device="cpu", max_steps=3)
    resumed = train_style(entry, recipe, out_dir=tmp_path / "split", device="cpu", resume=True)
    assert same(weights(straight), weights(resumed))
    assert torch.load(resumed, weights_only=True)["step"] == 6
    rows = (tmp_path / "split" / entry.name / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,") and "content_loss" in rows[0] and len(rows) == 1 + 3


def test_every_task_names_train_and_evaluate_hooks_that_exist():
    from convzoo import tasks

    for task in tasks.TASKS.values():
        assert callable(task.hook("train"))
        if task.evaluate is not None:
            assert callable(task.hook("evaluate"))
        else:
            assert task.unevaluated
            with pytest.raises(KeyError, match="no evaluate hook"):
                task.hook("evaluate")


def test_selection_keeps_the_better_value_in_its_direction():
    from convzoo import tasks

    lower, higher = tasks.get("segmentation").headline, tasks.get("classification").headline
    assert lower.improves(0.1, None) and lower.improves(0.1, 0.2) and not lower.improves(0.3, 0.2)
    assert higher.improves(0.9, 0.8) and not higher.improves(0.8, 0.8)


# Each process remembers the U-Net it built and saves its own parameters, so the two can be compared (the
# batch-norm running statistics are each process's own: DDP keeps the parameters equal, and rank 0's are written).
SCRIPT = """
import dataclasses, os, sys
import torch
torch.set_num_threads(1)
from convzoo import registry
from convzoo.models import ARCHITECTURES, architecture, architectures
from convzoo.training.segmentation import train_segmentation
architectures()
built = []

@architecture("test_unet")
def test_unet(**kwargs):
    built.append(ARCHITECTURES["unet"](**kwargs))
    return built[-1]

entry = dataclasses.replace(registry.get("unet-membranes"), arch="test_unet",
                            arch_args={"depth": 2, "width": 4, "padding": "same"})
recipe = dataclasses.replace(entry.recipe, epochs=2, batch_size=4, val_split=2,
                             options={**entry.recipe.options, "tile": 32, "steps_per_epoch": 3})
train_segmentation(entry, recipe, data_dir=sys.argv[2], out_dir=sys.argv[1], device="cpu")
torch.save({k: v.detach().clone() for k, v in built[-1].named_parameters()},
           os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.mark.slow
def test_segmentation_trains_in_two_processes_with_identical_weights(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    data = write_pairs(synthetic_sections(n=5, size=64, seed=0), tmp_path / "pairs")
    script = tmp_path / "seg_child.py"
    script.write_text(SCRIPT)
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "ddp"),
                             str(data)], env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    last = torch.load(tmp_path / "ddp" / "unet-membranes" / "last.pt", weights_only=True)
    assert last["world_size"] == 2 and last["step"] == 6 and last["epoch"] == 2
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert same(ranks[0], ranks[1])
    assert same(ranks[0], {k: last["model"][k] for k in ranks[0]})  # rank 0 wrote the run
