"""Data: the idx reader, finding Fashion-MNIST, the validation hold-out, batching, augmentations."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convzoo import runtime
from convzoo.data import idx
from convzoo.data.fashion_mnist import epoch_batches, from_arrays, hold_out
from convzoo.data.transforms import Augment, normalize, random_crop, random_erase, random_flip
from convzoo.errors import ConvzooError, DataNotFoundError
from convzoo.zoo import CIFAR10_PRE, FASHION_PRE


def write_idx(path: Path, array: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def fake_fashion(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", (np.arange(n) % 10).astype(np.uint8))


# ---------------------------------------------------------------------------------------------- idx


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_read_idx_round_trips_plain_and_gzipped(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / name), array)
    big_endian = np.array([1, -2, 70000], dtype=">i4")
    write_idx(tmp_path / name, big_endian)
    assert idx.read_idx(tmp_path / name).tolist() == [1, -2, 70000]


def test_read_idx_refuses_truncated_and_foreign_files(tmp_path):
    write_idx(tmp_path / "t.idx", np.zeros((4, 5), np.uint8))
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes()[:-3])
    with pytest.raises(DataNotFoundError, match="truncated"):
        idx.read_idx(tmp_path / "t.idx")
    (tmp_path / "f.idx").write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataNotFoundError, match="magic"):
        idx.read_idx(tmp_path / "f.idx")


@pytest.mark.parametrize("header", [
    bytes([0, 0, 8, 255]) + b"\x00\x00\x00\x02" * 3,  # 255 dimensions, 12 bytes of them
    bytes([0, 0, 8, 0]),  # no dimensions
    bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3,  # a shape whose product overflows int64
    bytes([0, 0, 13, 2]) + b"\x7f\xff\xff\xff" * 2 + b"\x00" * 16,  # float32, 2**62 values claimed
], ids=["255 dims", "0 dims", "overflowing shape", "huge float shape"])
def test_read_idx_refuses_a_lying_header_with_a_sentence(tmp_path, header):
    (tmp_path / "lying.idx").write_bytes(header)
    with pytest.raises(DataNotFoundError, match="truncated or corrupt"):
        idx.read_idx(tmp_path / "lying.idx")


def test_finds_fashion_mnist_in_data_dir_env_and_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "no-debian")
    fake_fashion(tmp_path / "plain", gz=False)
    fake_fashion(tmp_path / "tv" / "FashionMNIST" / "raw")
    assert idx.find_fashion_mnist(tmp_path / "plain") == tmp_path / "plain"
    assert idx.find_fashion_mnist(tmp_path / "tv") == tmp_path / "tv" / "FashionMNIST" / "raw"
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "plain"))
    images, labels = idx.load_split("test")
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64


def test_missing_fashion_mnist_names_the_three_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("CONVZOO_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as caught:
        idx.load_split("train")
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "$CONVZOO_DATA" in message
    assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com" in message and "zalandoresearch" in message
    # a folder the user names is the only place looked in, so a typo is not papered over
    fake_fashion(tmp_path / "env")
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError, match="typo"):
        idx.find_fashion_mnist(tmp_path / "typo")


def test_real_fashion_mnist_splits(fashion_dir):
    train_x, train_y = idx.load_split("train", fashion_dir)
    test_x, test_y = idx.load_split("test", fashion_dir)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y).tolist() == [6000] * 10 and np.bincount(test_y).tolist() == [1000] * 10
    assert abs(train_x.mean() / 255 - FASHION_PRE.mean[0]) < 1e-3  # the registry's mean is this data's


def test_idx_reader_needs_no_torch(fashion_dir):
    code = ("import sys; sys.modules['torch'] = None\n"
            "import convzoo.data, convzoo.data.idx as idx\n"
            f"x, y = idx.load_split('test', {str(fashion_dir)!r}); assert x.shape == (10000, 28, 28)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torchvision_sets_without_data_say_download(tmp_path):
    from convzoo.data.fashion_mnist import load_classification

    for dataset in ("mnist", "cifar10"):
        with pytest.raises(DataNotFoundError, match="--download"):
            load_classification(dataset, data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------- splits, batches


def test_validation_hold_out_is_seeded_disjoint_and_complete():
    train, val = hold_out(1000, 100, seed=0)
    again, _ = hold_out(1000, 100, seed=0)
    other, _ = hold_out(1000, 100, seed=1)
    assert len(train) == 900 and len(val) == 100
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(1000))
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    with pytest.raises(ConvzooError, match="val_split"):
        hold_out(10, 10)


def test_from_arrays_keeps_test_apart_and_adds_a_channel():
    images = np.arange(20 * 28 * 28, dtype=np.int64).reshape(20, 28, 28).astype(np.uint8)
    labels = np.arange(20) % 10
    data = from_arrays((images, labels), (images[:3], labels[:3]), val_split=5)
    assert data.train_images.shape == (15, 1, 28, 28) and data.val_images.shape == (5, 1, 28, 28)
    assert data.test_images.shape == (3, 1, 28, 28) and data.train_images.dtype == torch.uint8
    joined = torch.cat([data.train_labels, data.val_labels]).sort().values
    assert joined.tolist() == sorted(labels.tolist())


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    a = epoch_batches(100, 32, seed=3, epoch=0)
    assert a.shape == (3, 32) and len(set(a.flatten().tolist())) == 96  # no image twice; the partial batch dropped
    assert torch.equal(a, epoch_batches(100, 32, seed=3, epoch=0))
    assert not torch.equal(a, epoch_batches(100, 32, seed=3, epoch=1))
    assert not torch.equal(a, epoch_batches(100, 32, seed=4, epoch=0))


# ---------------------------------------------------------------------------------------------- augmentations


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_shifts_each_image_by_at_most_the_padding_and_fills_zeros():
    x = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 200  # a square well inside the frame: every crop keeps it whole
    out = random_crop(x, generator(), padding=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    shifts = set()
    for image in out[:, 0]:
        rows, cols = torch.nonzero(image == 200, as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        assert image.sum() == x[0, 0].sum()  # moved, not changed
        assert torch.equal(image[top:top + 8, left:left + 8], torch.full((8, 8), 200, dtype=torch.uint8))
        shifts.add((top - 10, left - 10))
    assert shifts <= {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert len(shifts) > 5  # each image gets its own window


def test_crop_pads_with_zeros_at_the_border():
    x = torch.full((256, 1, 8, 8), 255, dtype=torch.uint8)
    out = random_crop(x, generator(), padding=1)
    assert (out == 0).any() and set(out.unique().tolist()) == {0, 255}
    zero_rows = (out[:, 0] == 0).all(dim=2).sum(dim=1)  # whole zero rows per image: at most the padding
    assert zero_rows.max() <= 1


def test_flip_mirrors_left_right_or_leaves_alone():
    x = torch.arange(32 * 3 * 4 * 5, dtype=torch.float32).view(32, 3, 4, 5)
    out = random_flip(x, generator())
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 32
    assert torch.equal(random_flip(x, generator(), p=1.0), x.flip(-1))
    assert torch.equal(random_flip(x, generator(), p=0.0), x)


def test_erase_blanks_a_rectangle_of_the_papers_size():
    x = torch.zeros(200, 1, 28, 28)
    out = random_erase(x, generator(), p=1.0)
    changed = (out != 0)[:, 0]
    fractions = changed.float().mean(dim=(1, 2))
    assert (fractions > 0).all() and (fractions <= 0.41).all()  # 2-40% of the image (clamped at the border)
    for mask in changed[:20]:  # a rectangle: its bounding box is all changed
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].float().mean() > 0.99
    assert torch.equal(random_erase(x, generator(), p=0.0), x)


def test_augment_pipeline_is_deterministic_per_seed_and_keeps_shapes():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=generator(9))
    augment = Augment(("crop", "flip", "erase"), CIFAR10_PRE)
    assert augment.padding == 4 and Augment(("crop",), FASHION_PRE).padding == 2
    a, b, c = augment(x, generator(1)), augment(x, generator(1)), augment(x, generator(2))
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ConvzooError, match="unknown augmentation 'rotate'"):
        Augment(("crop", "rotate"), CIFAR10_PRE)


def test_normalize_is_what_the_runtime_does_at_inference():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = runtime.normalize(pixels, CIFAR10_PRE)
    got = normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None], CIFAR10_PRE).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert torch.equal(Augment((), CIFAR10_PRE)(torch.from_numpy(pixels).permute(2, 0, 1)[None], generator()),
                       normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None], CIFAR10_PRE))
