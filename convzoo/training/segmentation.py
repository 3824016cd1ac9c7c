"""Training a segmentation U-Net on image/label sections (``convzoo train unet-membranes``).

The U-Net paper's tools for tiny data: every step samples fresh tiles with elastic deformation,
flips, rotations and grey-value changes (``convzoo.data.augment_seg``), and the loss weights the
thin membranes (class-weighted cross-entropy, optionally plus soft Dice on the membrane class).
The sections live on the device and tiles are made there, so a GPU step does no host work and
no synchronisation; metrics are read once an epoch, on the held-out sections (the last
``recipe.val_split``), which choose the best checkpoint by pixel error.

Recipe options: ``tile`` (training tile side), ``steps_per_epoch``, ``loss`` (``ce``,
``weighted_ce``, ``dice`` joined by ``+``), ``membrane_weight`` (class-0 weight in the
cross-entropy), ``warmup_steps``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.data.augment_seg import check_ops, sample_tiles
from convzoo.data.transforms import normalize
from convzoo.data.membranes import Sections, read_sections, synthetic_sections
from convzoo.errors import ConvzooError
from convzoo.models import build
from convzoo.registry import atomic_write_json
from convzoo.segmentation_metrics import score
from convzoo.types import ModelEntry, Recipe
from convzoo.training import RUNS, checkpoints, skeleton
from convzoo.training.distributed import resolve_device

LOSS_TERMS = ("ce", "weighted_ce", "dice")


def loss_terms(spec: str) -> tuple[str, ...]:
    terms = tuple(t.strip() for t in spec.split("+") if t.strip())
    unknown = [t for t in terms if t not in LOSS_TERMS]
    if not terms or unknown:
        raise ConvzooError(f"segmentation loss {spec!r}: use terms from {', '.join(LOSS_TERMS)} joined by '+'")
    return terms


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, terms: tuple[str, ...],
                      membrane_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy (class 0, the thin membranes, weighted up) and/or soft Dice of the membrane class."""
    logits = logits.float()  # the loss in fp32 whatever the autocast dtype
    loss = logits.new_zeros(())
    if "weighted_ce" in terms or "ce" in terms:
        weight = None
        if "weighted_ce" in terms:
            weight = torch.ones(logits.shape[1], device=logits.device)
            weight[0] = membrane_weight
        loss = loss + F.cross_entropy(logits, target, weight=weight)
    if "dice" in terms:
        membrane = logits.softmax(1)[:, 0]
        truth = (target == 0).float()
        loss = loss + 1 - (2 * (membrane * truth).sum() + 1) / (membrane.sum() + truth.sum() + 1)
    return loss


def _center_crop(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (t.shape[-2] - height) // 2, (t.shape[-1] - width) // 2
    return t[..., top:top + height, left:left + width]


def _input_side(model: nn.Module, side: int) -> tuple[int, int]:
    """Input side and top padding that give an output covering ``side`` pixels (same or valid padding)."""
    if getattr(model, "padding", "same") == "same":
        multiple = getattr(model, "size_multiple", 1)
        return -(-side // multiple) * multiple, 0
    size = model.valid_input_size(side)
    while model.output_size(size) < side:
        size = model.valid_input_size(size + 1)
    return size, (size - model.output_size(size)) // 2


def predict_full(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits for whole sections N x C x H x W, padding by mirroring as the paper does."""
    height, width = x.shape[-2:]
    size_h, top = _input_side(model, height)
    size_w, left = _input_side(model, width)
    padded = F.pad(x, (left, size_w - width - left, top, size_h - height - top), mode="reflect")
    return model(padded)[..., :height, :width]


@torch.no_grad()
def validate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, autocast) -> dict[str, Any]:
    """Pixel error and membrane Dice on whole sections; returns also the predicted class maps (CPU)."""
    model.eval()
    predictions = []
    for i in range(len(images)):  # one section at a time keeps memory flat for large sections
        with autocast():
            predictions.append(predict_full(model, images[i:i + 1]).argmax(1))
    prediction = torch.cat(predictions)
    target = labels.long()
    wrong = (prediction != target).float().mean()
    p, t = prediction == 0, target == 0
    dice = 2 * (p & t).sum() / (p.sum() + t.sum()).clamp(min=1)
    values = torch.stack([wrong, dice]).tolist()  # the one host sync of a validation
    model.train()
    return {"val_pixel_error": values[0], "val_dice": values[1], "prediction": prediction.to("cpu", torch.uint8)}


def load_sections(data_dir: str | Path | None, recipe: Recipe) -> tuple[Sections, Sections]:
    if str(data_dir).startswith("synthetic"):  # "synthetic" or "synthetic:N": offline smoke runs
        count = int(str(data_dir).partition(":")[2] or 8)
        sections = synthetic_sections(count, size=int(recipe.options.get("synthetic_size", 128)), seed=recipe.seed)
    else:
        sections = read_sections(data_dir)
    if recipe.val_split == 0:
        return sections, sections  # no hold-out asked for: checkpoints are chosen on training data
    return sections.split(recipe.val_split)


def train_segmentation(entry: ModelEntry, recipe: Recipe, *, data_dir: str | Path | None = None,
                       out_dir: str | Path = RUNS, device: str = "auto", resume: bool = False,
                       max_steps: int | None = None) -> Path:
    """Train ``entry`` with ``recipe``; returns the best checkpoint (``out_dir/NAME/best.pt``).

    ``data_dir``: a folder of image/label pairs (default: the ISBI 2012 sections), or
    ``"synthetic"`` for procedurally made ones (offline smoke runs).
    """
    ops = check_ops(recipe.augment)
    opts = skeleton.options(entry, recipe)
    terms = loss_terms(opts.loss)
    dev = resolve_device(device)
    torch.manual_seed(recipe.seed)
    run_dir = Path(out_dir) / entry.name
    state = skeleton.start_run(run_dir, entry, recipe, resume, map_location=dev)
    with skeleton.kernels(dev, opts):
        return _train(entry, recipe, opts, ops, terms, data_dir, run_dir, dev, state, max_steps)


def _train(entry: ModelEntry, recipe: Recipe, opts, ops, terms, data_dir, run_dir: Path, dev: torch.device,
           state: dict[str, Any] | None, max_steps: int | None) -> Path:
    train_set, val_set = load_sections(data_dir, recipe)
    images = torch.from_numpy(train_set.images).to(dev)[:, None].float() / 255
    labels = torch.from_numpy(train_set.labels).to(dev)
    val_images = normalize(torch.from_numpy(val_set.images).to(dev)[:, None].float(), entry.preprocess)
    val_labels = torch.from_numpy(val_set.labels).to(dev)

    model = build(entry).to(dev)
    multiple = getattr(model, "size_multiple", 1)
    side = min(images.shape[-2:])
    tile = min(opts.tile, max(multiple, side // multiple * multiple))
    if getattr(model, "padding", "same") == "valid":
        tile = model.valid_input_size(tile)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = skeleton.make_optimizer(model, recipe)
    steps_per_epoch = opts.steps_per_epoch
    total_steps = recipe.epochs * steps_per_epoch
    warmup = opts.warmup_steps if opts.warmup_steps is not None else min(100, max(1, total_steps // 20))
    scheduler = skeleton.make_scheduler(optimizer, recipe, total_steps, warmup)
    generator = torch.Generator(device=dev).manual_seed(recipe.seed)

    def autocast():
        return skeleton.autocast(dev)

    epoch, step, seconds, rows, best_error = 0, 0, 0.0, [], float("inf")
    last_path, best_path = run_dir / checkpoints.LAST, run_dir / checkpoints.BEST
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["rng"].cpu())
        epoch, step, seconds = state["epoch"], state["step"], state["seconds"]
        rows, best_error = list(state.get("history", [])), float(state.get("best_pixel_error", best_error))

    machine = checkpoints.machine(dev)

    def payload(metrics: dict[str, Any], with_optimizer: bool) -> dict[str, Any]:
        state = {"model": checkpoints.plain_state_dict(model), "entry": entry.name, "recipe": recipe.to_json(),
                 "epoch": epoch, "step": step, "metrics": metrics, "seconds": seconds, "device": str(dev),
                 "machine": machine, "best_pixel_error": best_error}
        if with_optimizer:
            state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         rng=generator.get_state(), history=rows)
        return state

    limit = min(total_steps, max_steps) if max_steps else total_steps
    bar = skeleton.progress(limit, step, entry.name)
    model.train()
    while epoch < recipe.epochs and step < limit:
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        steps_run = 0
        while steps_run < steps_per_epoch and step < limit:
            x, y = sample_tiles(images, labels, recipe.batch_size, tile, ops, generator)
            x = normalize(x * 255, entry.preprocess)  # the tiles come as pixels / 255
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            if logits.shape[-2:] != y.shape[-2:]:  # valid padding: the label of the output's centre
                y = _center_crop(y, *logits.shape[-2:])
            loss = segmentation_loss(logits, y, terms, opts.membrane_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            step += 1
            steps_run += 1
            bar.update(1)
        epoch += 1
        result = validate(model, val_images, val_labels, autocast)
        seconds += time.perf_counter() - started
        rate = steps_run * recipe.batch_size / max(1e-9, time.perf_counter() - started)
        metrics = {"epoch": epoch, "step": step, "partial": steps_run < steps_per_epoch,
                   "lr": scheduler.get_last_lr()[0], "train_loss": loss_sum.item() / max(1, steps_run),
                   "val_pixel_error": result["val_pixel_error"], "val_dice": result["val_dice"],
                   "val_sections": list(val_set.names), "seconds": round(seconds, 2),
                   "tiles_per_second": round(rate, 1)}
        if result["val_pixel_error"] < best_error:
            best_error = result["val_pixel_error"]
            rand = score(list(result["prediction"].numpy()), list(val_set.labels))
            metrics.update(val_rand_error=rand["rand_error"])
            checkpoints.save(best_path, payload(metrics, with_optimizer=False))
        rows.append(metrics)
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val_err=f"{metrics['val_pixel_error']:.4f}",
                        best=f"{best_error:.4f}")
        checkpoints.save(last_path, payload(metrics, with_optimizer=True))
        atomic_write_json(run_dir / "metrics.json", rows)
    bar.close()
    if not best_path.is_file():  # resumed a finished run, or no step was allowed: the last weights are the best known
        checkpoints.save(best_path, payload(rows[-1] if rows else {}, with_optimizer=False))
    return best_path
