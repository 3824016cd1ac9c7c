"""convzoo.augment_preview against the torch training code: fed the random numbers a torch.Generator gives
the training functions, the numpy twins make the same pixels (uint8) and the same normalised tensors (float32),
bit for bit; and their own numpy draws come from the same distributions."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo import augment_preview as preview
from convzoo import registry
from convzoo.data import transforms
from convzoo.data.idx import load_split
from convzoo.errors import ConvzooError, EntryError
from convzoo.zoo import CIFAR10_PRE, FASHION_PRE

from conftest import FASHION_DIR  # tests/conftest.py: where Debian's Fashion-MNIST package puts the files

EXAMPLES = Path(__file__).resolve().parent.parent / "convzoo" / "assets" / "fashion_examples"
SEEDS = range(25)
BATCH = 16
AUGMENTED = sorted({name for name in registry.names("classification") if registry.get(name).recipe.augment})


@pytest.fixture(scope="module")
def fashion_images() -> np.ndarray:
    """Real Fashion-MNIST test images, N x 28 x 28 uint8: Debian's package where installed, else the shipped
    examples (test images too)."""
    if any((FASHION_DIR / f"t10k-images-idx3-ubyte{gz}").exists() for gz in ("", ".gz")):
        return load_split("test", FASHION_DIR)[0][:2000]
    return np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted(EXAMPLES.glob("*.png"))])


def pixel_batch(fashion_images: np.ndarray, seed: int, channels: int = 1, size: int = 28) -> np.ndarray:
    """BATCH x C x H x W uint8: real images for 28x28 grey, otherwise real images pasted into colour noise."""
    rng = np.random.default_rng(seed)
    picked = fashion_images[rng.integers(0, len(fashion_images), BATCH)]
    if channels == 1 and size == 28:
        return picked[:, None].copy()
    out = rng.integers(0, 256, (BATCH, channels, size, size), dtype=np.uint8)
    out[:, :, :28, :28] = picked[:, None]
    return out


def twin(generator: torch.Generator) -> torch.Generator:
    """A second generator in the same state: it yields the numbers the training function is about to draw."""
    return torch.Generator().set_state(generator.get_state())


# The draws of random_crop, random_flip and random_erase, in their order, as raw random numbers; the
# formulas that turn them into rectangles are augment_preview's own (erase_boxes), so they are tested too.

def crop_draws(g: torch.Generator, batch: int, padding: int) -> tuple[np.ndarray, np.ndarray]:
    if padding <= 0:  # random_crop returns before drawing
        return np.zeros(batch, np.int64), np.zeros(batch, np.int64)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=g)
    return dy.numpy(), dx.numpy()


def flip_draws(g: torch.Generator, batch: int, p: float) -> np.ndarray:
    return (torch.rand(batch, generator=g) < p).numpy()


def erase_draws(g: torch.Generator, shape: tuple[int, ...], p: float) -> dict[str, np.ndarray]:
    batch, _, height, width = shape
    u_area, u_aspect, u_top, u_left = (torch.rand(batch, generator=g).numpy() for _ in range(4))
    top, left, h, w = preview.erase_boxes(u_area, u_aspect, u_top, u_left, height, width)
    chosen = (torch.rand(batch, generator=g) < p).numpy()
    noise = torch.randn(shape, generator=g, dtype=torch.float32).numpy()
    return dict(erase=chosen, top=top, left=left, height=h, width=w, noise=noise)


def torch_draw(plan: preview.Plan, shape: tuple[int, ...], g: torch.Generator) -> preview.Draw:
    """The numbers transforms.Augment draws, in its order: pixel operations in the recipe's order, then erasing."""
    batch = shape[0]
    dy = dx = np.zeros(batch, np.int64)
    flips = np.zeros(batch, bool)
    for name in plan.names:
        if name == "crop":
            dy, dx = crop_draws(g, batch, plan.padding)
        elif name == "flip":
            flips = flip_draws(g, batch, plan.flip_p)
    if "erase" in plan.names:
        erased = erase_draws(g, shape, plan.erase_p)
    else:
        zeros = np.zeros(batch, np.int64)
        erased = dict(erase=np.zeros(batch, bool), top=zeros, left=zeros, height=zeros, width=zeros,
                      noise=np.zeros(shape, np.float32))
    return preview.Draw(dy=dy, dx=dx, flip=flips, **erased)


def test_erase_defaults_are_the_torch_ones():
    params = inspect.signature(transforms.random_erase).parameters
    assert params["area"].default == preview.ERASE_AREA and params["ratio"].default == preview.ERASE_RATIO


@pytest.mark.parametrize("options, padding_28, padding_32", [({}, 2, 4), ({"crop_padding": 3}, 3, 3)])
def test_the_preview_and_training_read_one_typed_crop_padding(options, padding_28, padding_32):
    for pre, expected in ((FASHION_PRE, padding_28), (CIFAR10_PRE, padding_32)):
        assert preview.Plan.of(("crop",), pre, options).padding == expected
        assert transforms.Augment(("crop",), pre, options).padding == expected


def test_a_misspelt_augmentation_option_is_refused_by_both():
    for make in (preview.Plan.of, transforms.Augment):
        with pytest.raises(EntryError, match="unknown classification option"):
            make(("flip",), FASHION_PRE, {"flip_prob": 0.3})


@pytest.mark.parametrize("padding", [0, 1, 2, 4])
def test_crop_matches_torch(fashion_images, padding):
    for seed in SEEDS:  # one test, many draws: the seeds are data, not separate cases
        pixels = pixel_batch(fashion_images, seed)
        g = torch.Generator().manual_seed(seed)
        dy, dx = crop_draws(twin(g), BATCH, padding)
        expected = transforms.random_crop(torch.from_numpy(pixels), g, padding).numpy()
        got = preview.crop(pixels, dy, dx, padding)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_flip_matches_torch(fashion_images, p):
    for seed in SEEDS:  # one test, many draws: the seeds are data, not separate cases
        pixels = pixel_batch(fashion_images, seed, channels=3, size=32)
        g = torch.Generator().manual_seed(seed)
        flips = flip_draws(twin(g), BATCH, p)
        expected = transforms.random_flip(torch.from_numpy(pixels), g, p).numpy()
        got = preview.flip(pixels, flips)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [28, 32])
def test_erase_matches_torch(fashion_images, size):
    """Rectangles from erase_boxes, on torch's uniforms, land exactly where random_erase puts them."""
    for seed in SEEDS:  # one test, many draws: the seeds are data, not separate cases
        entry = registry.get("resnet18-fashion" if size == 28 else "resnet18-cifar10")
        pixels = pixel_batch(fashion_images, seed, entry.preprocess.channels, size)
        x = preview.normalize(pixels, entry.preprocess)
        g = torch.Generator().manual_seed(seed)
        d = preview.Draw(dy=None, dx=None, flip=None, **erase_draws(twin(g), x.shape, 0.5))
        expected = transforms.random_erase(torch.from_numpy(x), g, 0.5).numpy()
        np.testing.assert_array_equal(preview.erase(x, d), expected)


def test_normalisation_matches_torch(fashion_images):
    for name in ("lenet5-fashion", "resnet18-cifar10"):
        pre = registry.get(name).preprocess
        pixels = pixel_batch(fashion_images, 0, pre.channels, pre.size[0])
        expected = transforms.normalize(torch.from_numpy(pixels), pre).numpy()
        np.testing.assert_array_equal(preview.normalize(pixels, pre), expected)


@pytest.mark.parametrize("name", AUGMENTED)
def test_plan_reads_the_recipe_as_augment_does(name):
    entry = registry.get(name)
    plan = preview.plan_of(name)
    augment = transforms.Augment(entry.recipe.augment, entry.preprocess, entry.recipe.options)
    assert (plan.names, plan.padding, plan.flip_p, plan.erase_p) == (
        augment.names, augment.padding, augment.flip_p, augment.erase_p)


def whole_recipe_cases() -> list[tuple[str, dict]]:
    """Every distinct augmented registry recipe (INT8 twins share theirs), plus options that override each default."""
    distinct = {}
    for name in AUGMENTED:
        entry = registry.get(name)
        key = (entry.recipe.augment, entry.preprocess, tuple(sorted(entry.recipe.options.items())))
        distinct.setdefault(key, name)
    return [(name, {}) for name in distinct.values()] + [
        ("resnet18-fashion", {"crop_padding": 3, "flip_p": 0.25, "erase_p": 1.0}),
        ("resnet18-cifar10", {"crop_padding": 0, "flip_p": 1.0})]


@pytest.mark.parametrize(("name", "options"), whole_recipe_cases())
def test_whole_recipe_matches_torch_augment(fashion_images, name, options):
    """transforms.Augment, end to end, against augment_preview.augment: the normalised batch, exactly."""
    for seed in SEEDS:  # one test, many draws: the seeds are data, not separate cases
        entry = registry.get(name)
        options = {**entry.recipe.options, **options}
        pre = entry.preprocess
        pixels = pixel_batch(fashion_images, seed, pre.channels, pre.size[0])
        plan = preview.Plan.of(entry.recipe.augment, pre, options)
        g = torch.Generator().manual_seed(1000 + seed)
        d = torch_draw(plan, pixels.shape, twin(g))
        expected = transforms.Augment(entry.recipe.augment, pre, options)(torch.from_numpy(pixels), g).numpy()
        got = preview.augment(plan, pixels, d)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        if "erase" not in plan.names:  # without noise, the preview's pixels are training's pixels
            np.testing.assert_array_equal(preview.to_pixels(got, pre).transpose(0, 3, 1, 2),
                                          preview.to_pixels(expected, pre).transpose(0, 3, 1, 2))


def test_to_pixels_undoes_the_normalisation(fashion_images):
    for name in ("lenet5-fashion", "resnet18-cifar10"):
        pre = registry.get(name).preprocess
        pixels = pixel_batch(fashion_images, 1, pre.channels, pre.size[0])
        np.testing.assert_array_equal(preview.to_pixels(preview.normalize(pixels, pre), pre),
                                      pixels.transpose(0, 2, 3, 1))


def test_unknown_augmentations_are_refused_like_training_refuses_them():
    pre = registry.get("lenet5-fashion").preprocess
    with pytest.raises(ConvzooError, match="unknown augmentation 'elastic'"):
        preview.Plan.of(("crop", "elastic"), pre)
    with pytest.raises(ConvzooError, match="unknown augmentation 'elastic'"):
        transforms.check_names(("crop", "elastic"))


def test_describe_names_the_recipe():
    assert preview.describe(preview.plan_of("lenet5-fashion")) == "crop with 2 px zero padding, horizontal flip p=0.5"
    assert preview.describe(preview.plan_of("resnet18-cifar10")).startswith("crop with 4 px zero padding")
    assert "random erasing p=0.5 (2%-40% of the image" in preview.describe(preview.plan_of("resnet18-fashion"))
    assert preview.describe(preview.plan_of("lenet5-mnist")) == "no augmentation"


# ----------------------------------------------------------------------------------------------
# the numpy draws: same ranges, same distributions as torch's


N = 20_000


def torch_boxes(shape: tuple[int, int, int, int], seed: int) -> tuple[np.ndarray, ...]:
    """Rectangles as random_erase itself makes them (p=1 on zeros), read back from where the noise landed."""
    erased = transforms.random_erase(torch.zeros(shape), torch.Generator().manual_seed(seed), p=1.0).numpy()[:, 0] != 0
    rows, cols = erased.any(axis=2), erased.any(axis=1)
    h, w = rows.sum(1), cols.sum(1)
    return rows.argmax(1), cols.argmax(1), h, w


def max_cdf_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between two samples of integers."""
    values = np.union1d(a, b)
    cdf = lambda s: np.searchsorted(np.sort(s), values, side="right") / len(s)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


@pytest.mark.parametrize("name", ["resnet18-fashion", "resnet18-cifar10"])
def test_numpy_draws_have_the_torch_ranges_and_distributions(name):
    pre = registry.get(name).preprocess
    plan = preview.Plan.of(("crop", "flip", "erase"), pre, {"flip_p": 0.3, "erase_p": 0.7})
    height, width = pre.size
    shape = (N, 1, height, width)
    d = preview.draw(plan, shape, np.random.default_rng(0))

    offsets = np.arange(2 * plan.padding + 1)
    for shift in (d.dy, d.dx):  # every offset 0..2*padding, roughly equally often, nothing else
        np.testing.assert_array_equal(np.unique(shift), offsets)
        assert np.bincount(shift).min() > 0.8 * N / len(offsets)
    assert abs(d.flip.mean() - 0.3) < 0.015 and abs(d.erase.mean() - 0.7) < 0.015

    assert (d.height >= 1).all() and (d.width >= 1).all()
    assert (d.top >= 0).all() and (d.left >= 0).all()
    assert (d.top + d.height <= height).all() and (d.left + d.width <= width).all()
    fraction = d.height * d.width / (height * width)
    assert 0.01 < fraction.min() < 0.03 and 0.3 < fraction.max() < 0.45  # 2-40%, give or take rounding and clamping
    aspect = d.height / d.width
    assert aspect.min() < 0.4 and aspect.max() > 2.5  # 0.3-3.3 before rounding
    assert abs(np.mean(np.log(aspect))) < 0.05  # log-uniform about 1

    top, left, h, w = torch_boxes(shape, seed=0)
    for mine, theirs in ((d.height, h), (d.width, w), (d.top, top), (d.left, left)):
        assert max_cdf_gap(mine, theirs) < 0.02  # two samples of 20,000 from one distribution

    assert d.noise.shape == shape and d.noise.dtype == np.float32
    assert abs(float(d.noise.mean())) < 0.01 and abs(float(d.noise.std()) - 1) < 0.01


def test_unused_operations_draw_nothing_visible():
    plan = preview.plan_of("lenet5-mnist")  # no augmentation
    d = preview.draw(plan, (64, 1, 28, 28), np.random.default_rng(0))
    assert not d.dy.any() and not d.dx.any() and not d.flip.any() and not d.erase.any()


def test_views_of_one_image(fashion_images):
    plan = preview.plan_of("resnet18-fashion")
    image = fashion_images[0]
    pictures, d = preview.views(plan, image, 8, np.random.default_rng(3))
    assert pictures.shape == (8, 28, 28, 1) and pictures.dtype == np.uint8
    again, _ = preview.views(plan, image, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(pictures, again)  # a seed gives the same views
    other, _ = preview.views(plan, image, 8, np.random.default_rng(4))
    assert not np.array_equal(pictures, other)
    untouched = ~d.erase & ~d.flip & (d.dy == plan.padding) & (d.dx == plan.padding)
    for i in np.flatnonzero(untouched):  # a view nothing moved is the image itself
        np.testing.assert_array_equal(pictures[i, :, :, 0], image)
