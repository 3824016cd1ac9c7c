"""Classification data held whole in memory as uint8 tensors and batched by index.

Fashion-MNIST is 47 MB of uint8 pixels, CIFAR-10 150 MB: both fit on any GPU, so the training loop
keeps them on its device and a batch is one gather (``images[indices]``) with no per-image Python
work and no DataLoader workers. Pixels stay uint8 until the batch is augmented and normalised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convzoo.data.idx import load_split
from convzoo.errors import ConvzooError

DATASETS = ("fashion-mnist", "mnist", "cifar10")


@dataclass(frozen=True)
class ClassificationData:
    """Train (minus the validation hold-out), validation and test images: uint8 N x C x H x W, labels int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    dataset: str = ""

    def to(self, device: torch.device | str) -> ClassificationData:
        moved = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self) if f.name != "dataset"}
        return ClassificationData(**moved, dataset=self.dataset)

    def head(self, train: int | None = None, val: int | None = None, test: int | None = None) -> ClassificationData:
        """The first images of each split: small, real slices for tests and smoke runs."""
        return ClassificationData(self.train_images[:train], self.train_labels[:train], self.val_images[:val],
                                  self.val_labels[:val], self.test_images[:test], self.test_labels[:test],
                                  self.dataset)

    def describe(self) -> dict[str, int | str]:
        return {"dataset": self.dataset, "train": len(self.train_labels), "val": len(self.val_labels),
                "test": len(self.test_labels)}


def hold_out(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) splitting ``n`` training images; the same for the same seed, on any machine.

    Checkpoints are chosen on this validation set; the test set is only ever reported (issue #5).
    """
    if not 0 <= size < n:
        raise ConvzooError(f"val_split must be between 0 and {n - 1} (the training set has {n} images), not {size}")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def from_arrays(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *, val_split: int,
                val_seed: int = 0, dataset: str = "") -> ClassificationData:
    """Numpy images (N x H x W or N x C x H x W, uint8) and labels as a ``ClassificationData`` on the CPU."""
    def images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[:, None] if x.ndim == 3 else x))

    train_x, train_y = train
    keep, val = hold_out(len(train_y), val_split, val_seed)
    return ClassificationData(images(train_x[keep]), torch.from_numpy(train_y[keep].astype(np.int64)),
                              images(train_x[val]), torch.from_numpy(train_y[val].astype(np.int64)),
                              images(test[0]), torch.from_numpy(test[1].astype(np.int64)), dataset)


def load_fashion_mnist(data_dir: Path | str | None = None, *, val_split: int = 5000,
                       val_seed: int = 0) -> ClassificationData:
    return from_arrays(load_split("train", data_dir), load_split("test", data_dir), val_split=val_split,
                       val_seed=val_seed, dataset="fashion-mnist")


def load_classification(dataset: str, *, data_dir: Path | str | None = None, download: bool = False,
                        val_split: int = 5000, val_seed: int = 0,
                        device: torch.device | str = "cpu") -> ClassificationData:
    """A registry entry's data set, whole, on ``device``."""
    if dataset == "fashion-mnist":
        data = load_fashion_mnist(data_dir, val_split=val_split, val_seed=val_seed)
    elif dataset in ("mnist", "cifar10"):
        from convzoo.data.torchvision_sets import load_torchvision

        train, test = load_torchvision(dataset, data_dir=data_dir, download=download)
        data = from_arrays(train, test, val_split=val_split, val_seed=val_seed, dataset=dataset)
    else:
        raise ConvzooError(f"convzoo cannot load the classification data set {dataset!r}; "
                           f"it knows {', '.join(DATASETS)}")
    return data.to(device)


def epoch_batches(n: int, batch_size: int, *, seed: int, epoch: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """This epoch's shuffled training order as a (steps, batch_size) index tensor on ``device``.

    A pure function of (seed, epoch), so a resumed run sees the very batches the interrupted one would
    have, and every DDP rank sees the same global batches (each then takes its share). The last partial
    batch is dropped: fixed shapes suit cudnn.benchmark, and the shuffle drops different images each epoch.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)
    batch_size = min(batch_size, n)
    steps = n // batch_size
    return order[: steps * batch_size].view(steps, batch_size).to(device)
