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

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.data.augment_seg import check_ops, sample_tiles
from convzoo.data.transforms import normalize
from convzoo.data.membranes import Sections, read_sections, synthetic_sections
from convzoo.errors import ConvzooError
from convzoo.segmentation_metrics import score
from convzoo.types import ModelEntry, Recipe, training_options
from convzoo.training import RUNS, skeleton
from convzoo.training import fit as one_loop
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
        size = training_options("segmentation", recipe.options).synthetic_size
        sections = synthetic_sections(count, size=size, seed=recipe.seed)
    else:
        sections = read_sections(data_dir)
    if recipe.val_split == 0:
        return sections, sections  # no hold-out asked for: checkpoints are chosen on training data
    return sections.split(recipe.val_split)


def train_segmentation(entry: ModelEntry, recipe: Recipe, *, data_dir: str | Path | None = None,
                       out_dir: str | Path = RUNS, device: str = "auto", resume: bool = False,
                       max_steps: int | None = None, download: bool = False) -> Path:
    """Train ``entry`` with ``recipe`` in the one loop; returns the best checkpoint (``out_dir/NAME/best.pt``).

    ``data_dir``: a folder of image/label pairs (default: the ISBI 2012 sections), or
    ``"synthetic"`` for procedurally made ones (offline smoke runs). ``download`` is accepted as every task's
    train hook takes it; the sections are local.
    """
    ops = check_ops(recipe.augment)
    terms = loss_terms(skeleton.options(entry, recipe).loss)
    resolve_device(device)  # a bad --device is reported before any work
    train_set, val_set = load_sections(data_dir, recipe)
    def make_steps(context: Any, model: nn.Module) -> SegmentationSteps:
        return SegmentationSteps(entry, recipe, ops, terms, train_set, val_set, context, model)

    return one_loop.fit(entry, recipe, make_steps, out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


class SegmentationSteps:
    """A U-Net's part of the loop: ``steps_per_epoch`` steps of freshly sampled, augmented tiles, the
    weighted loss, whole held-out sections validated every epoch; ``best.pt`` by pixel error."""

    warmup = 0.25
    checkpoint_every = None
    plot = False
    channels_last = False  # not measured on the CPU for these networks: the default layout stays

    def __init__(self, entry: ModelEntry, recipe: Recipe, ops: Any, terms: tuple[str, ...], train_set: Sections,
                 val_set: Sections, context: Any, model: nn.Module) -> None:
        dev = context.device
        self.entry, self.ops, self.terms, self.val_set = entry, ops, terms, val_set
        self.opts = skeleton.options(entry, recipe)
        self.batch_size = one_loop.per_process(recipe.batch_size, context)
        self.images = torch.from_numpy(train_set.images).to(dev)[:, None].float() / 255
        self.labels = torch.from_numpy(train_set.labels).to(dev)
        self.val_images = normalize(torch.from_numpy(val_set.images).to(dev)[:, None].float(), entry.preprocess)
        self.val_labels = torch.from_numpy(val_set.labels).to(dev)
        self.device = dev
        self.epochs = recipe.epochs
        total = recipe.epochs * self.opts.steps_per_epoch
        self.warmup_steps = self.opts.warmup_steps if self.opts.warmup_steps is not None else min(100, max(1, total // 20))
        multiple = getattr(model, "size_multiple", 1)  # the tile side the architecture takes
        side = min(self.images.shape[-2:])
        self.tile = min(self.opts.tile, max(multiple, side // multiple * multiple))
        if getattr(model, "padding", "same") == "valid":
            self.tile = model.valid_input_size(self.tile)

    def steps_in(self, epoch: int) -> int:
        return self.opts.steps_per_epoch

    def batch(self, epoch: int, index: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_tiles(self.images, self.labels, self.batch_size, self.tile, self.ops, generator)
        return normalize(x * 255, self.entry.preprocess), y  # the tiles come as pixels / 255

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        if logits.shape[-2:] != y.shape[-2:]:  # valid padding: the label of the output's centre
            y = _center_crop(y, *logits.shape[-2:])
        loss = segmentation_loss(logits, y, self.terms, self.opts.membrane_weight)
        return loss, torch.stack([loss.detach().double(), torch.ones((), dtype=torch.float64, device=x.device)])

    def train_metrics(self, stats: list[float]) -> dict[str, Any]:
        loss_sum, count = stats or (0.0, 0.0)
        return {"train_loss": loss_sum / max(count, 1)}

    def validate(self, model: nn.Module) -> dict[str, Any]:
        result = validate(model, self.val_images, self.val_labels, lambda: skeleton.autocast(self.device))
        self._prediction = result["prediction"]
        return {"val_pixel_error": result["val_pixel_error"], "val_dice": result["val_dice"],
                "val_sections": list(self.val_set.names)}

    def start(self, model: nn.Module) -> None:
        return None

    def on_best(self, model: nn.Module, row: dict[str, Any]) -> None:
        """The Rand error too, for the best only: it is the slow one."""
        row["val_rand_error"] = score(list(self._prediction.numpy()), list(self.val_set.labels))["rand_error"]

    def summary(self, row: dict[str, Any]) -> str:
        return (f"epoch {row['epoch']}{' (partial)' if row['partial'] else ''}: train loss {row['train_loss']:.4f} | "
                f"val pixel error {row['val_pixel_error']:.4f} dice {row['val_dice']:.4f} | "
                f"{row['epoch_seconds']:.1f} s")

    def finish(self, model: nn.Module, run_dir: Path) -> None:
        return None

    def describe(self) -> Any:
        return {"dataset": self.entry.dataset, "train": len(self.images), "val": len(self.val_images)}
