"""The idx format of (Fashion-)MNIST, read with numpy alone: training uses it, and so does the
onnxruntime evaluation, which must run without torch.

Fashion-MNIST is looked for in ``--data-dir`` (only there, when given), then ``$CONVZOO_DATA``,
then Debian's ``/usr/share/datasets/fashion-mnist/`` (package ``dataset-fashion-mnist``, which
holds the four original ``*-idx?-ubyte.gz`` files).
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np

from convzoo.errors import DataNotFoundError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {  # split -> (images, labels), without the .gz that the official files carry
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# The third byte of the magic number names the element type (LeCun's idx format description).
DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
HOW_TO_GET = (
    "Get Fashion-MNIST in one of three ways:\n"
    "  1. on Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist`\n"
    "     (the files land in /usr/share/datasets/fashion-mnist/);\n"
    "  2. put the four idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
    "     t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not) in a folder\n"
    "     and pass `--data-dir FOLDER` or set $CONVZOO_DATA=FOLDER;\n"
    f"  3. download them from the official site, {OFFICIAL_URL}\n"
    "     (listed at https://github.com/zalandoresearch/fashion-mnist),\n"
    "     into that folder."
)


def read_idx(path: Path | str) -> np.ndarray:
    """An idx file (gzipped when its name ends in .gz) as an array of its own shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # a truncated gzip raises EOFError
        raise DataNotFoundError(f"cannot read {path} ({e}); replace the file. {HOW_TO_GET}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in DTYPES:
        raise DataNotFoundError(f"{path} is not an idx file (bad magic number); replace the file. {HOW_TO_GET}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataNotFoundError(f"{path} claims {ndim} dimensions, which its {len(data)} bytes cannot hold: the file "
                                f"is truncated or corrupt; replace it. {HOW_TO_GET}")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(DTYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize  # Python integers: a lying header cannot overflow
    if len(data) != expected:
        raise DataNotFoundError(f"{path} holds {len(data)} bytes but its header promises {expected}: the file is "
                                f"truncated or corrupt; replace it. {HOW_TO_GET}")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _holds_fashion_mnist(folder: Path) -> bool:
    return all(_locate(folder, stem) for pair in FILES.values() for stem in pair)


def _candidates(folder: Path) -> list[Path]:
    # torchvision's FashionMNIST(root) keeps the same files in root/FashionMNIST/raw
    return [folder, folder / "FashionMNIST" / "raw"]


def find_fashion_mnist(data_dir: Path | str | None = None) -> Path:
    """The folder holding the four Fashion-MNIST idx files; ``DataNotFoundError`` says how to get them."""
    if data_dir is not None:  # the user named a folder: look nowhere else, so a typo is not silently ignored
        searched = _candidates(Path(data_dir))
    else:
        roots = [Path(os.environ["CONVZOO_DATA"])] if os.environ.get("CONVZOO_DATA") else []
        searched = [c for root in [*roots, DEBIAN_DIR] for c in _candidates(root)]
    for folder in searched:
        if _holds_fashion_mnist(folder):
            return folder
    raise DataNotFoundError(f"Fashion-MNIST is not in {', '.join(map(str, searched))}.\n{HOW_TO_GET}")


def load_split(name: str = "train", data_dir: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``train`` (60,000) or ``test`` (10,000): images uint8 N x 28 x 28, labels int64 N."""
    if name not in FILES:
        raise ValueError(f"split must be one of {', '.join(FILES)}, not {name!r}")
    folder = find_fashion_mnist(data_dir)
    images_stem, labels_stem = FILES[name]
    images = read_idx(_locate(folder, images_stem))
    labels = read_idx(_locate(folder, labels_stem)).astype(np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != (images.shape[0],):
        raise DataNotFoundError(f"{folder}: the {name} files do not look like Fashion-MNIST (images {images.shape} "
                                f"{images.dtype}, labels {labels.shape}); replace them. {HOW_TO_GET}")
    return images, labels
