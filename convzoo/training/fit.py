"""The one training loop, for every task: device and multi-process set-up, seeding, exact resume,
the optimizer step, one run-state checkpoint, the metrics files, and the best checkpoint chosen by
the task's headline metric on the validation split (``val_<key>``, in its direction; a task without one
keeps its latest weights). A task supplies ``Steps``: its batches, its loss and its validation
(``loop.ClassifierSteps``, ``segmentation.SegmentationSteps``, ``style.StyleSteps``).

Resume is exact: a task's batches are a function of (epoch, index) and of torch's generator, which
every step reseeds from (seed, rank, step), so augmentation, tile sampling and dropout after a
resume are what they would have been; the run state (``last.pt``) holds the optimizer, schedule,
running sums and history. A killed and resumed CPU run ends with the weights of an uninterrupted
one, whatever the task.

Multi-process (``torchrun``): the model is wrapped in DistributedDataParallel, each process takes
its share of a step's batch (its rank is in the step seed), the running sums and validation are
reduced, and process 0 writes the run.

The host waits for the device only when the progress bar is refreshed (every ``LOG_EVERY`` steps)
and at the end of an epoch.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from convzoo import tasks
from convzoo.errors import ConvzooError
from convzoo.training import BEST, LAST, RUNS, checkpoints, curves, distributed, skeleton
from convzoo.types import ModelEntry, Recipe

LOG_EVERY = 25  # steps between progress-bar refreshes, the only per-step host syncs
CHECKPOINT_SECONDS = 300.0  # mid-epoch last.pt at most this often, unless options["checkpoint_every"] (steps)
RUN_STATE = 2  # the layout of last.pt; an older one is refused for resume with a sentence


class Steps(Protocol):
    """What a task gives the loop. ``stats`` are float sums over an epoch (their last element counts the
    items), reduced across processes; ``train_metrics`` turns them into the row's train columns."""

    epochs: int
    warmup: float  # one-cycle's warm-up fraction
    warmup_steps: int  # cosine/constant schedules' linear warm-up
    checkpoint_every: int | None  # steps between mid-epoch saves (None: every CHECKPOINT_SECONDS)
    plot: bool  # draw curves.png (loss and accuracy against epoch)
    channels_last: bool  # NHWC on the CPU too (always on CUDA): only where benchmarks/train_step.py found it faster

    def steps_in(self, epoch: int) -> int: ...
    def batch(self, epoch: int, index: int, generator: torch.Generator) -> tuple[torch.Tensor, Any]: ...
    def loss(self, model: nn.Module, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, torch.Tensor]: ...
    def start(self, model: nn.Module) -> None: ...  # a new run's first weights (not called on resume)
    def train_metrics(self, stats: list[float]) -> dict[str, Any]: ...
    def validate(self, model: nn.Module) -> dict[str, Any]: ...
    def on_best(self, model: nn.Module, row: dict[str, Any]) -> None: ...
    def summary(self, row: dict[str, Any]) -> str: ...
    def finish(self, model: nn.Module, run_dir: Path) -> None: ...
    def describe(self) -> Any: ...


def fit(entry: ModelEntry, recipe: Recipe, make_steps: Any, *, out_dir: Path | str = RUNS,
        device: str | torch.device = "auto", resume: bool = False, max_steps: int | None = None) -> Path:
    """Train ``entry``'s architecture with the task's ``make_steps(context, model)``; returns
    ``out_dir/<name>/best.pt``."""
    context = distributed.setup(device)
    try:
        opts = skeleton.options(entry, recipe)
        cpu_bf16 = opts.cpu_bf16 and context.device.type == "cpu"
        if cpu_bf16 and not skeleton.cpu_has_bf16():
            raise ConvzooError("recipe option cpu_bf16: this CPU has no bf16 instructions (amx_bf16 or avx512_bf16 "
                               "in /proc/cpuinfo), where bf16 training steps run 10-20x slower than float32; leave "
                               "the option off on this machine")
        with skeleton.kernels(context.device, opts):
            return _fit(entry, recipe, make_steps, Path(out_dir) / entry.name, context, resume, max_steps,
                        opts.compile, opts.checkpoint_every, cpu_bf16)
    finally:
        distributed.teardown(context)


def _fit(entry: ModelEntry, recipe: Recipe, make_steps: Any, run_dir: Path, context: distributed.Context,
         resume: bool, max_steps: int | None, compile_model: bool, checkpoint_every: int | None,
         cpu_bf16: bool = False) -> Path:
    from convzoo.models import build

    device, main = context.device, context.is_main
    cuda = device.type == "cuda"
    best_path, last_path = run_dir / BEST, run_dir / LAST
    state = skeleton.start_run(run_dir, entry, recipe, resume, main)
    if state is not None and state.get("run_state") != RUN_STATE:
        raise ConvzooError(f"{run_dir / LAST} was written by an older convzoo; it cannot be resumed: start a new "
                           "run without --resume (or in another --out)")
    distributed.barrier(context)
    headline = tasks.get(entry.task).headline  # chooses best.pt, as measured on the validation split
    selection = f"val_{headline.key}" if headline else None

    torch.manual_seed(recipe.seed)  # the initial weights
    model = build(entry)
    if state is not None:
        model.load_state_dict(state["model"])
    steps: Steps = make_steps(context, model)  # the model too: a U-Net's tile side is the architecture's
    if state is None:
        steps.start(model)
    total_steps = sum(steps.steps_in(e) for e in range(steps.epochs))
    nhwc = cuda or steps.channels_last
    model.to(device, memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    trained = distributed.wrap(model, context)
    if compile_model:
        trained = torch.compile(trained)
    optimizer = skeleton.make_optimizer(model, recipe)
    scheduler = skeleton.make_scheduler(optimizer, recipe, total_steps, steps.warmup_steps, steps.warmup)

    epoch, batch, step, seconds = 0, 0, 0, 0.0
    history: list[dict[str, Any]] = []
    best: float | None = None
    running: torch.Tensor | None = None  # this epoch's stats so far, on the device (no host sync per step)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, batch, step, seconds = state["epoch"], state["batch"], state["step"], state["seconds"]
        history, best = list(state["history"]), state["best"]
        if context.world_size == state["world_size"] and state["running"] is not None:
            running = state["running"].to(device)
        # else: the running sums were another process layout's share; this epoch's train metrics restart
        torch.set_rng_state(state["rng"]["torch"])
        if cuda and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)

    if epoch >= steps.epochs or (max_steps is not None and step >= max_steps):
        if main:
            print(f"convzoo: {run_dir} is already at step {step} (epoch {epoch} of {steps.epochs}); nothing to do",
                  file=sys.stderr)
        return best_path

    started = time.perf_counter()
    last_save = started
    machine = checkpoints.machine(device)
    generator = torch.cuda.default_generators[device.index or 0] if cuda else torch.default_generator

    def payload(metrics: dict[str, Any]) -> dict[str, Any]:
        return {"run_state": RUN_STATE, "model": checkpoints.plain_state_dict(model), "entry": entry.name,
                "recipe": recipe.to_json(), "epoch": epoch, "batch": batch, "step": step, "metrics": metrics,
                "history": history, "best": best, "selection": selection,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "running": None if running is None else running.cpu(),
                "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None},
                "seconds": seconds + time.perf_counter() - started, "device": str(device), "machine": machine,
                "world_size": context.world_size, "data": steps.describe()}

    stop = False
    while epoch < steps.epochs and not stop:
        n = steps.steps_in(epoch)
        trained.train()
        epoch_started, epoch_items = time.perf_counter(), 0
        bar = skeleton.progress(n, batch, f"{entry.name} {epoch + 1}/{steps.epochs}", "batch", main)
        while batch < n:
            torch.manual_seed(skeleton.step_seed(recipe.seed, context.rank, step))  # this step's randomness
            x, y = steps.batch(epoch, batch, generator)
            if nhwc and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with skeleton.autocast(device, cpu_bf16):
                loss, stats = steps.loss(trained, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            stats = stats.detach().double()
            running = stats if running is None else running + stats
            step, batch, epoch_items = step + 1, batch + 1, epoch_items + len(x) * context.world_size
            stop = max_steps is not None and step >= max_steps
            if main and (batch % LOG_EVERY == 0 or batch == n or stop):
                shown = {k: f"{v:.4f}" for k, v in steps.train_metrics(running.tolist()).items()
                         if isinstance(v, float)}
                bar.set_postfix(**shown, img_s=f"{epoch_items / (time.perf_counter() - epoch_started):.0f}",
                                refresh=False)
            bar.update(1)
            if stop:
                break
            due = (step % checkpoint_every == 0 if checkpoint_every
                   else time.perf_counter() - last_save > CHECKPOINT_SECONDS)
            if main and due and batch < n:
                checkpoints.save(last_path, payload({}))
                last_save = time.perf_counter()
        bar.close()

        partial = batch < n
        totals = distributed.all_reduce_sum(running.clone(), context).tolist() if running is not None else []
        epoch_seconds = time.perf_counter() - epoch_started
        row = {"epoch": epoch + 1, "step": step, "partial": partial, "lr": scheduler.get_last_lr()[0],
               **steps.train_metrics(totals), **steps.validate(model), "epoch_seconds": epoch_seconds,
               "seconds": seconds + time.perf_counter() - started,
               "images_per_second": epoch_items / max(epoch_seconds, 1e-9)}
        value = row.get(selection) if selection else None
        improved = value is None or headline.improves(value, best)  # no validation: the latest is kept
        if improved and value is not None:
            best = value
        if not partial:
            history.append(row)
            epoch, batch, running = epoch + 1, 0, None
        if main:
            rows = history if not partial else [*history, row]
            tqdm.write(steps.summary(row), file=sys.stderr)
            if improved:
                steps.on_best(model, row)
                checkpoints.save(best_path, payload(row))
            checkpoints.save(last_path, payload(row))
            last_save = time.perf_counter()
            curves.write_metrics(run_dir, rows)
            if steps.plot:
                curves.plot_curves(run_dir / "curves.png", rows, title=f"{entry.name} ({entry.dataset})")
        stop = stop or (max_steps is not None and step >= max_steps)
    distributed.barrier(context)
    if main:
        steps.finish(model, run_dir)
    return best_path


def per_process(batch_size: int, context: distributed.Context) -> int:
    """This process's share of a step's batch; refused when there are more processes than items."""
    if batch_size < context.world_size:
        raise ConvzooError(f"batch size {batch_size} is smaller than the {context.world_size} processes")
    return math.ceil(batch_size / context.world_size)
