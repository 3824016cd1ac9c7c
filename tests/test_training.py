"""The classification loop: smoke runs, checkpoints, seeds, exact resume after SIGKILL, DDP under torchrun.

Runs train LeNet-5 on small slices of the real Fashion-MNIST for a few steps; speed is measured
elsewhere (the report and benchmarks/), never asserted here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from convzoo import cli, registry
from convzoo.data import idx
from convzoo.data.fashion_mnist import ClassificationData, load_fashion_mnist
from convzoo.errors import ConvzooError
from convzoo.models import build
from convzoo.training import skeleton, train
from convzoo.training.loop import fit

ROOT = Path(__file__).resolve().parent.parent
ENTRY = registry.get("lenet5-fashion")
KEYS = {"model", "entry", "recipe", "epoch", "step", "metrics", "optimizer", "scheduler", "rng", "seconds",
        "device", "machine"}


@pytest.fixture(scope="module")
def small(fashion_dir) -> ClassificationData:
    return load_fashion_mnist(fashion_dir, val_split=5000).head(train=512, val=256, test=256)


def recipe(**changes) -> types.Recipe:
    return dataclasses.replace(ENTRY.recipe, **{"epochs": 2, "batch_size": 64, **changes})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # six engineers share two cores
    yield
    torch.set_num_threads(before)


def test_smoke_run_writes_checkpoints_metrics_and_curves(small, tmp_path):
    best = fit(ENTRY, recipe(), small, out_dir=tmp_path, device="cpu")
    run = tmp_path / ENTRY.name
    assert best == run / "best.pt"
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / name, weights_only=True)  # tensors and plain containers only
        assert KEYS <= state.keys() and state["entry"] == ENTRY.name and state["device"] == "cpu"
        assert not any(key.startswith("module.") for key in state["model"])
        build(ENTRY).load_state_dict(state["model"])
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["step"] == 2 * (512 // 64) and last["recipe"] == recipe().to_json()
    rows = json.loads((run / "metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    assert all(0 <= row[f"{split}_accuracy"] <= 1 for row in rows for split in ("train", "val", "test"))
    assert rows[-1]["train_loss"] < 2.3  # it learns: chance is ln(10) = 2.30
    best_state = torch.load(run / "best.pt", weights_only=True)
    assert best_state["metrics"]["val_accuracy"] == max(row["val_accuracy"] for row in rows)  # chosen on validation
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,")
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run.glob(".*.tmp"))


def test_max_steps_stops_early_with_valid_checkpoints(small, tmp_path):
    fit(ENTRY, recipe(), small, out_dir=tmp_path, device="cpu", max_steps=3)
    run = tmp_path / ENTRY.name
    last = torch.load(run / "last.pt", weights_only=True)
    assert (last["epoch"], last["batch"], last["step"]) == (0, 3, 3)
    assert torch.load(run / "best.pt", weights_only=True)["step"] == 3
    assert json.loads((run / "metrics.json").read_text())[-1]["partial"] is True
    fit(ENTRY, recipe(), small, out_dir=tmp_path, device="cpu", max_steps=3, resume=True)  # already there
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3


def test_seed_makes_cpu_runs_repeatable(small, tmp_path):
    runs = [fit(ENTRY, recipe(seed=seed), small, out_dir=tmp_path / str(i), device="cpu", max_steps=6)
            for i, seed in enumerate((1, 1, 2))]
    assert same_weights(weights(runs[0]), weights(runs[1]))
    assert not same_weights(weights(runs[0]), weights(runs[2]))


def test_resume_continues_exactly_where_it_stopped(small, tmp_path):
    straight = fit(ENTRY, recipe(), small, out_dir=tmp_path / "straight", device="cpu")
    fit(ENTRY, recipe(), small, out_dir=tmp_path / "split", device="cpu", max_steps=5)  # stops mid-epoch 1
    resumed = fit(ENTRY, recipe(), small, out_dir=tmp_path / "split", device="cpu", resume=True)
    last = lambda p: p.parent / "last.pt"  # noqa: E731
    assert same_weights(weights(last(straight)), weights(last(resumed)))
    a = json.loads((straight.parent / "metrics.json").read_text())
    b = json.loads((resumed.parent / "metrics.json").read_text())
    assert [r["test_accuracy"] for r in a] == [r["test_accuracy"] for r in b]
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-12)


SMALL_CLASSIFIERS = [e.name for e in registry.entries("classification")
                     if e.dataset != "imagenet" and not e.quantization]


@pytest.mark.parametrize("name", SMALL_CLASSIFIERS)
def test_every_small_classifier_trains_a_step_with_its_recipe(name, tmp_path):
    entry = registry.get(name)
    channels, (height, width) = entry.in_channels, entry.preprocess.size
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=generator),
                torch.randint(0, len(entry.labels), (n,), generator=generator))

    data = ClassificationData(*split(32), *split(8), *split(8), dataset=entry.dataset)
    best = fit(entry, dataclasses.replace(entry.recipe, batch_size=16), data, out_dir=tmp_path, device="cpu",
               max_steps=2)  # the recipe's own optimizer, schedule and augmentations
    state = torch.load(best, weights_only=True)
    assert state["step"] == 2 and torch.isfinite(torch.tensor(state["metrics"]["train_loss"]))
    build(entry).load_state_dict(state["model"])


def test_resume_refuses_another_recipe(small, tmp_path):
    fit(ENTRY, recipe(), small, out_dir=tmp_path, device="cpu", max_steps=2)
    with pytest.raises(ConvzooError, match="recipe differs.*lr"):
        fit(ENTRY, recipe(lr=0.5), small, out_dir=tmp_path, device="cpu", resume=True)


def test_cli_smoke_train(fashion_dir, tmp_path, capsys):
    assert cli.main(["train", "lenet5-fashion", "--max-steps", "5", "--out", str(tmp_path),
                     "--data-dir", str(fashion_dir), "--device", "cpu"]) == 0
    assert f"checkpoint: {tmp_path / 'lenet5-fashion' / 'best.pt'}" in capsys.readouterr().out
    state = torch.load(tmp_path / "lenet5-fashion" / "best.pt", weights_only=True)
    assert state["step"] == 5 and state["data"] == {"dataset": "fashion-mnist", "train": 55000, "val": 5000,
                                                    "test": 10000}


def test_cli_missing_data_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("CONVZOO_DATA", raising=False)
    assert cli.main(["train", "lenet5-fashion", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "--data-dir" in err and "Traceback" not in err
    assert not (tmp_path / "lenet5-fashion").exists()


def test_train_hands_other_tasks_to_their_loops(monkeypatch, tmp_path):
    calls = []

    class Fake:
        @staticmethod
        def train_segmentation(entry, recipe, **kwargs):
            calls.append((entry.name, kwargs))
            return tmp_path / "seg.pt"

        train_style = train_segmentation

    monkeypatch.setitem(sys.modules, "convzoo.training.segmentation", Fake)
    monkeypatch.setitem(sys.modules, "convzoo.training.style", Fake)
    assert train(registry.get("unet-membranes"), out_dir=tmp_path, max_steps=3) == tmp_path / "seg.pt"
    train(registry.get("style-starry-night"), out_dir=tmp_path)
    assert [name for name, _ in calls] == ["unet-membranes", "style-starry-night"]
    assert calls[0][1] == {"data_dir": None, "out_dir": tmp_path, "device": "auto", "resume": False, "max_steps": 3,
                           "download": False}  # every task's train hook takes the same keywords


def test_cli_threads_sets_torchs_and_refuses_a_count_out_of_range(fashion_dir, tmp_path, capsys):
    assert cli.main(["train", "lenet5-fashion", "--threads", "2", "--max-steps", "1", "--out", str(tmp_path),
                     "--data-dir", str(fashion_dir), "--device", "cpu"]) == 0
    assert torch.get_num_threads() == 2  # the one_thread fixture puts it back
    for wrong in ("0", "257", "two"):
        with pytest.raises(SystemExit) as exited:
            cli.main(["train", "lenet5-fashion", "--threads", wrong])
        assert exited.value.code == 2
        assert "give a whole number from 1 to 256" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- subprocesses

# A LeNet-5 that sleeps in every forward pass (so a test can kill it mid-epoch) and remembers the
# last model built (so each DDP rank can report its own weights). Registered only in the child
# processes: the zoo's "every architecture is used" check never sees it.
SCRIPT = """
import dataclasses, os, sys, time
import torch
torch.set_num_threads(1)
from convzoo import registry, types
from convzoo.data.fashion_mnist import load_fashion_mnist
from convzoo.models import ARCHITECTURES, architecture, architectures
from convzoo.training.loop import fit

out, data_dir, sleep, resume = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "resume"
architectures()
built = []

@architecture("test_lenet5")
def test_lenet5(**kwargs):
    model = ARCHITECTURES["lenet5"](**kwargs)
    model.register_forward_pre_hook(lambda module, args: time.sleep(sleep) if module.training else None)
    built.append(model)
    return model

entry = dataclasses.replace(registry.get("lenet5-fashion"), arch="test_lenet5")
recipe = dataclasses.replace(entry.recipe, epochs=2, batch_size=64, options={"checkpoint_every": 2})
data = load_fashion_mnist(data_dir, val_split=5000).head(train=768, val=128, test=128)
fit(entry, recipe, data, out_dir=out, device="cpu", resume=resume)
torch.save({k: v.detach().clone() for k, v in built[-1].state_dict().items()},
           os.path.join(out, f"rank{os.environ.get('RANK', '0')}.pt"))
"""


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_run(fashion_dir, tmp_path):
    script = tmp_path / "train_child.py"
    script.write_text(SCRIPT)
    run = tmp_path / "killed" / ENTRY.name
    command = [sys.executable, str(script)]
    child = subprocess.Popen([*command, str(tmp_path / "killed"), str(fashion_dir), "0.15", "fresh"],
                             env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:  # wait for a mid-epoch checkpoint
            if last.is_file():
                state = torch.load(last, weights_only=True)
                if state["batch"] > 0:
                    break
            time.sleep(0.05)
        assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    killed_at = torch.load(last, weights_only=True)
    assert killed_at["epoch"] == 0 and 0 < killed_at["batch"] < 768 // 64

    subprocess.run([*command, str(tmp_path / "killed"), str(fashion_dir), "0", "resume"], env=child_env(),
                   check=True, capture_output=True)
    subprocess.run([*command, str(tmp_path / "straight"), str(fashion_dir), "0", "fresh"], env=child_env(),
                   check=True, capture_output=True)
    for path in run.glob("*.pt"):
        torch.load(path, weights_only=True)
    assert torch.load(last, weights_only=True)["epoch"] == 2
    assert same_weights(weights(last), weights(tmp_path / "straight" / ENTRY.name / "last.pt"))
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_identical_weights(fashion_dir, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    script = tmp_path / "train_child.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ddp"
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(out),
                             str(fashion_dir), "0", "fresh"], env=child_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(out / "rank0.pt", weights_only=True), torch.load(out / "rank1.pt", weights_only=True)
    assert same_weights(rank0, rank1)
    assert same_weights(rank0, weights(out / ENTRY.name / "last.pt"))  # rank 0 wrote the run
    assert not same_weights(rank0, build_initial())  # and it did train
    rows = json.loads((out / ENTRY.name / "metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2] and rows[-1]["step"] == 2 * (768 // 64)


def build_initial() -> dict[str, torch.Tensor]:
    torch.manual_seed(ENTRY.recipe.seed)
    return build(ENTRY).state_dict()


def test_cpu_bf16_is_refused_with_a_sentence_on_a_cpu_without_bf16_instructions(small, tmp_path, monkeypatch):
    monkeypatch.setattr(skeleton, "cpu_has_bf16", lambda: False)
    bf16 = recipe(options={**ENTRY.recipe.options, "cpu_bf16": True})
    with pytest.raises(ConvzooError, match="no bf16 instructions.*leave the option off"):
        fit(ENTRY, bf16, small, out_dir=tmp_path, device="cpu", max_steps=2)
    assert not (tmp_path / ENTRY.name / "last.pt").exists()  # refused before any work


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "amx").write_text("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    (tmp_path / "avx2").write_text("flags\t\t: fpu avx2 fma\n")
    assert skeleton.cpu_has_bf16(tmp_path / "amx") and not skeleton.cpu_has_bf16(tmp_path / "avx2")
    assert not skeleton.cpu_has_bf16(tmp_path / "missing")


@pytest.mark.skipif(not skeleton.cpu_has_bf16(),
                    reason="this CPU has no bf16 instructions (amx_bf16 / avx512_bf16)")
def test_cpu_bf16_trains_with_bf16_steps_and_float32_weights(small, tmp_path):
    bf16 = recipe(options={**ENTRY.recipe.options, "cpu_bf16": True})
    plain = fit(ENTRY, recipe(), small, out_dir=tmp_path / "fp32", device="cpu", max_steps=6)
    lowered = fit(ENTRY, bf16, small, out_dir=tmp_path / "bf16", device="cpu", max_steps=6)
    a, b = weights(plain), weights(lowered)
    assert all(v.dtype == torch.float32 for v in b.values())  # autocast lowers the steps, never the weights
    assert not same_weights(a, b)  # the steps did run in bf16: rounding moved the weights
    assert all(torch.allclose(a[k], b[k], atol=0.05) for k in a)  # yet six steps later they are the same net
