"""MNIST and CIFAR-10 through torchvision's own downloaders (``convzoo train ... --download``).

torchvision keeps each set under ``ROOT/MNIST/raw`` or ``ROOT/cifar-10-batches-py``; ROOT is
``--data-dir``, else ``$CONVZOO_DATA``, else ``~/.cache/convzoo-data``. Nothing is downloaded
unless the user asks: offline, a missing set is a ``DataNotFoundError`` that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convzoo.errors import DataNotFoundError

SETS = {"mnist": "MNIST", "cifar10": "CIFAR10"}  # registry dataset -> torchvision.datasets class


def default_root() -> Path:
    if os.environ.get("CONVZOO_DATA"):
        return Path(os.environ["CONVZOO_DATA"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convzoo-data"


def load_torchvision(dataset: str, *, data_dir: Path | str | None = None, download: bool = False,
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train, test), each (images uint8 N x C x H x W, labels int64 N)."""
    import torchvision.datasets

    if dataset not in SETS:
        raise DataNotFoundError(f"torchvision sets convzoo knows: {', '.join(SETS)}; not {dataset!r}")
    root = Path(data_dir) if data_dir is not None else default_root()
    factory = getattr(torchvision.datasets, SETS[dataset])
    try:
        splits = [factory(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as e:  # torchvision's "Dataset not found or corrupted"
        how = ("the download did not complete; check the connection and run it again" if download else
               f"add --download to let torchvision fetch it into {root}, or pass --data-dir pointing at a folder "
               f"where torchvision already keeps it (its {SETS[dataset]} layout)")
        raise DataNotFoundError(f"{dataset} is not in {root} ({e}); {how}") from e
    except OSError as e:  # offline: URLError and friends
        raise DataNotFoundError(f"could not download {dataset} into {root} ({e}); check the connection, or copy "
                                f"torchvision's files there and pass --data-dir") from e
    return tuple(_arrays(split) for split in splits)  # type: ignore[return-value]


def _arrays(split) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(split.data, dtype=np.uint8)  # MNIST: a uint8 tensor N x 28 x 28; CIFAR: numpy N x 32 x 32 x 3
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), np.asarray(split.targets, dtype=np.int64)
