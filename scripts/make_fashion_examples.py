"""Write a few real Fashion-MNIST test images per class as small PNGs for the demos' examples.

Reads the original idx files (Debian's dataset-fashion-mnist puts them in
/usr/share/datasets/fashion-mnist/) with numpy and gzip alone. The first N test images of each
class are taken, in file order, so the choice is reproducible and never from the training set.

    python scripts/make_fashion_examples.py [--data-dir DIR] [--per-class 3]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from convzoo.zoo import FASHION_MNIST

OUT = Path(__file__).resolve().parent.parent / "convzoo" / "assets" / "fashion_examples"
CREDIT = """Fashion-MNIST test images (t10k), the first {n} of each class in file order, written by
scripts/make_fashion_examples.py. File names: <index in the test set>-<class>.png.

Fashion-MNIST: Han Xiao, Kashif Rasul, Roland Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017.
https://github.com/zalandoresearch/fashion-mnist

The MIT License (MIT)
Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not): magic, dimension sizes as big-endian int32, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    raise SystemExit(f"{stem} is not in {data_dir}: `apt-get install dataset-fashion-mnist` or pass --data-dir")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--per-class", type=int, default=3)
    args = parser.parse_args()
    images = read_idx(find(args.data_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.data_dir, "t10k-labels-idx1-ubyte"))
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    for label, name in enumerate(FASHION_MNIST):
        slug = name.lower().replace("/", "-").replace(" ", "-")
        for index in np.flatnonzero(labels == label)[: args.per_class]:
            Image.fromarray(images[index]).save(OUT / f"{index:04d}-{slug}.png", optimize=True)
    (OUT / "LICENSE").write_text(CREDIT.format(n=args.per_class))
    print(f"wrote {args.per_class * len(FASHION_MNIST)} images to {OUT}")


if __name__ == "__main__":
    main()
