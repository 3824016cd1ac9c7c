"""A classifier's part of the one training loop (``convzoo.training.fit``): cross-entropy (optionally
label-smoothed, GoogLeNet's auxiliary heads weighted in), batches from the shuffled training set with
vectorised augmentation, validation and test evaluation every epoch, ``best.pt`` by validation accuracy.

Speed: the data set lives on the device as uint8 (``convzoo.data.fashion_mnist``), a batch is one
gather plus vectorised augmentation, and loss and accuracy are summed on the device. The batch order
is a function of (seed, epoch), which, with the loop's per-step reseeding, makes resume exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.data.fashion_mnist import ClassificationData, epoch_batches
from convzoo.data.transforms import Augment, normalize
from convzoo.types import ModelEntry, Recipe
from convzoo.training import RUNS, distributed, skeleton, teacher, warm_start
from convzoo.training import fit as one_loop

WARM_START_IMAGES = 2048  # training images that measure a rebuilt batch norm's statistics (warm_start)
AUX_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers' loss weight (Szegedy et al. 2014, section 5)


def classification_loss(output: Any, labels: torch.Tensor, smoothing: float,
                        main: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits); auxiliary heads (a tuple's tail, GoogLeNet in training) add AUX_WEIGHT each.
    ``main(logits)``, when given, is the main head's loss in place of its cross-entropy (distillation)."""
    if isinstance(output, (tuple, list)):
        logits, aux = output[0], [o for o in output[1:] if o is not None]
    else:
        logits, aux = output, []
    loss = main(logits) if main else F.cross_entropy(logits, labels, label_smoothing=smoothing)
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
        if context.device.type == "cuda" or ClassifierSteps.channels_last:
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
                               val_seed=skeleton.options(entry, recipe).val_seed)
    return fit(entry, recipe, data, out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


def fit(entry: ModelEntry, recipe: Recipe, data: ClassificationData, *, out_dir: Path | str = RUNS,
        device: str | torch.device = "auto", resume: bool = False, max_steps: int | None = None) -> Path:
    """Train ``entry``'s architecture on ``data`` with the one loop; returns ``out_dir/<name>/best.pt`` (best
    validation accuracy)."""
    return one_loop.fit(entry, recipe, lambda context, model: ClassifierSteps(entry, recipe, data, context, model),
                        out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


class ClassifierSteps:
    """A classifier's part of the loop: epochs over the shuffled training set, each process its share of
    a batch, cross-entropy, validation and test accuracy every epoch; ``best.pt`` by validation accuracy."""

    warmup_steps = 0
    checkpoint_every = None
    plot = True
    # NHWC on the CPU: 1.07x (ResNet-18) to 1.30x (GoogLeNet) a training step, benchmarks/train_step.py
    channels_last = True

    def __init__(self, entry: ModelEntry, recipe: Recipe, data: ClassificationData, context: distributed.Context,
                 model: nn.Module | None = None):
        one_loop.per_process(recipe.batch_size, context)
        self.entry, self.recipe, self.context = entry, recipe, context
        opts = skeleton.options(entry, recipe)
        if opts.dropout is not None and model is not None:  # here, not in start(): a resumed run needs it too
            for layer in model.modules():
                if isinstance(layer, nn.Dropout):
                    layer.p = opts.dropout
        self.warmup = opts.warmup
        self.augment = Augment(recipe.augment, entry.preprocess, opts)
        self.data = data.to(context.device)
        n_train = len(self.data.train_labels)
        self.per_epoch = n_train // min(recipe.batch_size, n_train)
        self.epochs = recipe.epochs
        self._order: tuple[int, torch.Tensor] | None = None
        self.warm = warm_start.stored_start(opts.init_from, entry) if opts.init_from else None
        self.options = opts
        self.teacher, self.teacher_logits = None, None
        if opts.teacher:
            self.teacher = teacher.stored_teacher(opts.teacher, entry)
            self.teacher_logits = teacher.teacher_logits(self.teacher, self.data.train_images,
                                                         torch.get_num_threads()).to(context.device)

    def steps_in(self, epoch: int) -> int:
        return self.per_epoch

    def batch(self, epoch: int, index: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_batches(len(self.data.train_labels), self.recipe.batch_size,
                                                seed=self.recipe.seed, epoch=epoch, device=self.context.device))
        indices = self._order[1][index, self.context.rank::self.context.world_size]
        labels = self.data.train_labels[indices]
        if self.teacher_logits is not None:
            labels = (labels, self.teacher_logits[indices])
        return self.augment(self.data.train_images[indices], generator), labels

    def loss(self, model: nn.Module, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        main = None
        if self.teacher_logits is not None:  # batch() paired each label with the teacher's logits
            y, soft = y
            main = functools.partial(teacher.distillation_loss, teacher=soft, labels=y,
                                     smoothing=self.recipe.label_smoothing, weight=self.options.distill_weight,
                                     temperature=self.options.distill_temperature)
        loss, logits = classification_loss(model(x), y, self.recipe.label_smoothing, main)
        return loss, torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                                  torch.tensor(float(len(y)), dtype=torch.float64, device=y.device)])

    def train_metrics(self, stats: list[float]) -> dict[str, Any]:
        loss_sum, correct, count = stats or (0.0, 0.0, 0.0)
        return {"train_loss": loss_sum / max(count, 1), "train_accuracy": correct / max(count, 1)}

    def validate(self, model: nn.Module) -> dict[str, Any]:
        val = evaluate(model, self.data.val_images, self.data.val_labels, self.entry, self.context)
        test = evaluate(model, self.data.test_images, self.data.test_labels, self.entry, self.context)
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"],
                "test_loss": test["loss"], "test_accuracy": test["accuracy"]}

    def start(self, model: nn.Module) -> None:
        """The weights of ``init_from`` (convzoo.training.warm_start), when the recipe names a file."""
        if self.warm is None:
            return
        images = normalize(self.data.train_images[:WARM_START_IMAGES].cpu(), self.entry.preprocess)
        warm_start.load_onnx_weights(model, str(self.warm.onnx_path), images)

    def on_best(self, model: nn.Module, row: dict[str, Any]) -> None:
        return None

    def summary(self, row: dict[str, Any]) -> str:
        return _summary(row)

    def finish(self, model: nn.Module, run_dir: Path) -> None:
        return None

    def describe(self) -> Any:
        out: dict[str, Any] = dict(self.data.describe())
        for key, stored in (("teacher", self.teacher), ("init_from", self.warm)):
            if stored is not None:
                out[key] = {"name": stored.name, "sha256": stored.sha256,
                            "test_accuracy": stored.metrics.get("accuracy"), **_trained(stored)}
        return out


def _trained(stored: Any) -> dict[str, Any]:
    """How long and where the stored file was trained, as its manifest says, with the file its run started from
    (``init_from``, itself with its own start): a chain of continuations keeps every run's time."""
    training = stored.manifest.get("training") or {}
    return {key: training[key] for key in ("seconds", "device", "machine", "epoch", "init_from") if key in training}


def _summary(row: dict[str, Any]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return (f"epoch {row['epoch']}{' (partial)' if row['partial'] else ''}: train loss {fmt(row['train_loss'])} "
            f"acc {fmt(row['train_accuracy'])} | val loss {fmt(row['val_loss'])} acc {fmt(row['val_accuracy'])} | "
            f"test acc {fmt(row['test_accuracy'])} | {row['epoch_seconds']:.1f} s, "
            f"{row['images_per_second']:.0f} img/s")
