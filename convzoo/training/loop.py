"""One training loop for every classifier: cross-entropy (optionally label-smoothed), SGD with Nesterov
momentum or AdamW, one-cycle or cosine schedule stepped per batch, bf16 autocast and channels_last on
CUDA, validation and test evaluation every epoch, atomic best/last checkpoints, exact resume.

Speed: the data set lives on the device as uint8 (``convzoo.data.fashion_mnist``), a batch is one
gather plus vectorised augmentation, loss and accuracy are summed on the device, and the host waits
for the device only when the progress bar is refreshed (every ``LOG_EVERY`` steps) and at epoch end.

Resume is exact: the batch order is a function of (seed, epoch), and every step reseeds torch's
random generators from (seed, rank, step), so augmentation and dropout after a resume are what they
would have been -- a killed and resumed CPU run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from convzoo.data.fashion_mnist import ClassificationData, epoch_batches
from convzoo.data.transforms import Augment, normalize
from convzoo.errors import ConvzooError
from convzoo.types import ModelEntry, Recipe
from convzoo.training import RUNS, checkpoints, curves, distributed, skeleton

LOG_EVERY = 25  # steps between progress-bar refreshes, the only per-step host syncs
CHECKPOINT_SECONDS = 300.0  # mid-epoch last.pt at most this often, unless options["checkpoint_every"] (steps)
AUX_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers' loss weight (Szegedy et al. 2014, section 5)


def classification_loss(output: Any, labels: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits); auxiliary heads (a tuple's tail, GoogLeNet in training) add AUX_WEIGHT each."""
    if isinstance(output, (tuple, list)):
        logits, aux = output[0], [o for o in output[1:] if o is not None]
    else:
        logits, aux = output, []
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    for extra in aux:
        loss = loss + AUX_WEIGHT * F.cross_entropy(extra, labels, label_smoothing=smoothing)
    return loss, logits


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, entry: ModelEntry,
             context: distributed.Context, batch_size: int = 1024) -> dict[str, float | None]:
    """Mean loss and accuracy; under DDP each rank takes every world_size-th image and the sums are reduced."""
    if len(labels) == 0:
        return {"loss": None, "accuracy": None}
    was_training = model.training
    model.eval()
    images, labels = images[context.rank::context.world_size], labels[context.rank::context.world_size]
    sums, count = torch.zeros(2, device=context.device, dtype=torch.float64), 0
    for start in range(0, len(labels), batch_size):
        x = normalize(images[start:start + batch_size], entry.preprocess)
        y = labels[start:start + batch_size]
        if context.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with skeleton.autocast(context.device):
            logits = model(x)
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        sums += torch.stack([F.cross_entropy(logits.float(), y, reduction="sum").double(),
                             (logits.argmax(1) == y).sum().double()])
        count += len(y)
    totals = torch.cat([sums, torch.tensor([float(count)], dtype=torch.float64).to(sums.device)])
    distributed.all_reduce_sum(totals, context)
    model.train(was_training)
    loss, correct, count = totals.tolist()
    return {"loss": loss / count, "accuracy": correct / count}


def train_classifier(entry: ModelEntry, recipe: Recipe, *, data_dir: Path | str | None = None,
                     out_dir: Path | str = RUNS, device: str = "auto", resume: bool = False,
                     max_steps: int | None = None, download: bool = False) -> Path:
    """Load the entry's data set (on the CPU: ``fit`` moves it to each process's device) and ``fit``."""
    from convzoo.data.fashion_mnist import load_classification

    distributed.resolve_device(device)  # a bad --device is reported before any work
    data = load_classification(entry.dataset, data_dir=data_dir, download=download, val_split=recipe.val_split,
                               val_seed=int(recipe.options.get("val_seed", 0)))
    return fit(entry, recipe, data, out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


def fit(entry: ModelEntry, recipe: Recipe, data: ClassificationData, *, out_dir: Path | str = RUNS,
        device: str | torch.device = "auto", resume: bool = False, max_steps: int | None = None) -> Path:
    """Train ``entry``'s architecture on ``data``; returns ``out_dir/<name>/best.pt`` (best validation accuracy)."""
    context = distributed.setup(device)
    try:
        with skeleton.kernels(context.device, skeleton.options(entry, recipe)):
            return _fit(entry, recipe, data, Path(out_dir) / entry.name, context, resume, max_steps)
    finally:
        distributed.teardown(context)


def _fit(entry: ModelEntry, recipe: Recipe, data: ClassificationData, run_dir: Path,
         context: distributed.Context, resume: bool, max_steps: int | None) -> Path:
    from convzoo.models import build

    device, main = context.device, context.is_main
    cuda = device.type == "cuda"
    augment = Augment(recipe.augment, entry.preprocess, recipe.options)
    opts = skeleton.options(entry, recipe)
    if recipe.batch_size < context.world_size:
        raise ConvzooError(f"batch size {recipe.batch_size} is smaller than the {context.world_size} processes")
    best_path, last_path = run_dir / checkpoints.BEST, run_dir / checkpoints.LAST
    state = skeleton.start_run(run_dir, entry, recipe, resume, main)
    distributed.barrier(context)

    data = data.to(device)
    n_train = len(data.train_labels)
    steps_per_epoch = n_train // min(recipe.batch_size, n_train)
    total_steps = recipe.epochs * steps_per_epoch

    torch.manual_seed(recipe.seed)  # the initial weights
    model = build(entry)
    if state is not None:
        model.load_state_dict(state["model"])
    model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    trained = distributed.wrap(model, context)
    if opts.compile:
        trained = torch.compile(trained)
    optimizer = skeleton.make_optimizer(model, recipe)
    scheduler = skeleton.make_scheduler(optimizer, recipe, total_steps)

    epoch, batch, step, seconds = 0, 0, 0, 0.0
    history: list[dict[str, Any]] = []
    best_accuracy = -math.inf
    # this epoch so far, on the device (no host sync per step): loss sum, correct; and the image count
    running, running_count = torch.zeros(2, device=device, dtype=torch.float64), 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, batch, step, seconds = state["epoch"], state["batch"], state["step"], state["seconds"]
        history = list(state["history"])
        best_accuracy = state["best_val_accuracy"]
        if context.world_size == state.get("world_size", 1):
            running, running_count = state["running"].to(device), state["running_count"]
        # else: the running sums were another process layout's share; this epoch's train metrics restart
        torch.set_rng_state(state["rng"]["torch"])
        if cuda and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)

    if epoch >= recipe.epochs or (max_steps is not None and step >= max_steps):
        if main:
            print(f"convzoo: {run_dir} is already at step {step} (epoch {epoch} of {recipe.epochs}); nothing to do",
                  file=sys.stderr)
        return best_path

    started = time.perf_counter()
    checkpoint_every = opts.checkpoint_every
    last_save = started

    def payload(metrics: dict[str, Any]) -> dict[str, Any]:
        return {"model": checkpoints.plain_state_dict(model), "entry": entry.name, "recipe": recipe.to_json(),
                "epoch": epoch, "batch": batch, "step": step, "metrics": metrics, "history": history,
                "best_val_accuracy": best_accuracy, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "running": running.cpu(), "running_count": running_count,
                "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None},
                "seconds": seconds + time.perf_counter() - started, "device": str(device),
                "machine": checkpoints.machine(device), "world_size": context.world_size, "data": data.describe()}

    stop = False
    while epoch < recipe.epochs and not stop:
        order = epoch_batches(n_train, recipe.batch_size, seed=recipe.seed, epoch=epoch, device=device)
        trained.train()
        epoch_started, epoch_images = time.perf_counter(), 0
        bar = skeleton.progress(len(order), batch, f"{entry.name} {epoch + 1}/{recipe.epochs}", "batch", main)
        while batch < len(order):
            torch.manual_seed(skeleton.step_seed(recipe.seed, context.rank, step))  # augmentation and dropout of this step
            indices = order[batch, context.rank::context.world_size]
            x = augment(data.train_images[indices], torch.default_generator if not cuda else _cuda_generator(device))
            y = data.train_labels[indices]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with skeleton.autocast(device):
                loss, logits = classification_loss(trained(x), y, recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double()])
            running_count += len(y)
            step, batch, epoch_images = step + 1, batch + 1, epoch_images + len(y) * context.world_size
            stop = max_steps is not None and step >= max_steps
            if main and (batch % LOG_EVERY == 0 or batch == len(order) or stop):
                loss_sum, correct = running.tolist()
                bar.set_postfix(loss=f"{loss_sum / running_count:.4f}", acc=f"{correct / running_count:.4f}",
                                img_s=f"{epoch_images / (time.perf_counter() - epoch_started):.0f}", refresh=False)
            bar.update(1)
            if stop:
                break
            if checkpoint_every:
                due = step % checkpoint_every == 0
            else:
                due = time.perf_counter() - last_save > CHECKPOINT_SECONDS
            if main and due and batch < len(order):
                checkpoints.save(last_path, payload({}))
                last_save = time.perf_counter()
        bar.close()

        partial = batch < len(order)
        local = torch.cat([running, torch.tensor([float(running_count)], dtype=torch.float64).to(device)])
        totals = distributed.all_reduce_sum(local, context).tolist()
        epoch_seconds = time.perf_counter() - epoch_started
        val = evaluate(model, data.val_images, data.val_labels, entry, context)
        test = evaluate(model, data.test_images, data.test_labels, entry, context)
        row = {"epoch": epoch + 1, "step": step, "partial": partial, "lr": scheduler.get_last_lr()[0],
               "train_loss": totals[0] / max(totals[2], 1), "train_accuracy": totals[1] / max(totals[2], 1),
               "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "test_loss": test["loss"], "test_accuracy": test["accuracy"], "epoch_seconds": epoch_seconds,
               "seconds": seconds + time.perf_counter() - started,
               "images_per_second": epoch_images / max(epoch_seconds, 1e-9)}
        # Select on validation only; without a validation split the latest model is the one kept.
        improved = val["accuracy"] is None or val["accuracy"] > best_accuracy
        if improved and val["accuracy"] is not None:
            best_accuracy = val["accuracy"]
        if not partial:
            history.append(row)
            epoch, batch = epoch + 1, 0
            running.zero_()
            running_count = 0
        if main:
            rows = history if not partial else [*history, row]
            tqdm.write(_summary(row), file=sys.stderr)
            if improved:
                checkpoints.save(best_path, payload(row))
            checkpoints.save(last_path, payload(row))
            last_save = time.perf_counter()
            curves.write_metrics(run_dir, rows)
            curves.plot_curves(run_dir / "curves.png", rows, title=f"{entry.name} ({entry.dataset})")
        stop = stop or (max_steps is not None and step >= max_steps)
    distributed.barrier(context)
    return best_path


def _cuda_generator(device: torch.device) -> torch.Generator:
    return torch.cuda.default_generators[device.index or 0]


def _summary(row: dict[str, Any]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return (f"epoch {row['epoch']}{' (partial)' if row['partial'] else ''}: train loss {fmt(row['train_loss'])} "
            f"acc {fmt(row['train_accuracy'])} | val loss {fmt(row['val_loss'])} acc {fmt(row['val_accuracy'])} | "
            f"test acc {fmt(row['test_accuracy'])} | {row['epoch_seconds']:.1f} s, "
            f"{row['images_per_second']:.0f} img/s")
