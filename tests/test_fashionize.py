"""fashionize: product photos come out the way Fashion-MNIST's images look (Xiao et al., 2017, section 2)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from convzoo.errors import BadInputError
from convzoo.fashionize import fashionize
from convzoo.runtime import load_model

pytestmark = pytest.mark.unit  # torch-free, no servers or processes: `make test-fast`

TABLE = (206, 188, 164)  # a light wooden table
INK = (38, 36, 44)  # a dark product


def table(width: int = 480, height: int = 360, seed: int = 0) -> Image.Image:
    """A light table top with a lighting gradient and grain, as a phone photo of one looks."""
    rng = np.random.default_rng(seed)
    y = np.linspace(-8, 8, height)[:, None, None]
    pixels = np.asarray(TABLE, np.float32) + y + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photo(shape: list[tuple[float, float]] | None = None, draw=None, offset=(0, 0), seed: int = 0,
          fill=INK) -> Image.Image:
    image = table(seed=seed)
    d = ImageDraw.Draw(image)
    if shape:
        d.polygon([(x + offset[0], y + offset[1]) for x, y in shape], fill=fill)
    if draw:
        draw(d, offset)
    return image.filter(ImageFilter.GaussianBlur(1.2))  # a camera is never perfectly sharp


TROUSERS = [(200, 40), (290, 40), (300, 320), (262, 320), (246, 110), (232, 320), (192, 320)]
TSHIRT = [(190, 60), (220, 50), (260, 50), (290, 60), (340, 110), (315, 140), (295, 120), (295, 280),
          (185, 280), (185, 120), (165, 140), (140, 110)]
SNEAKER = [(118, 215), (150, 200), (230, 180), (290, 150), (350, 148), (362, 160), (362, 245), (118, 245)]  # toe left


def draw_bag(d: ImageDraw.ImageDraw, offset) -> None:
    ox, oy = offset
    d.rectangle([150 + ox, 140 + oy, 330 + ox, 300 + oy], fill=INK)
    d.arc([190 + ox, 70 + oy, 290 + ox, 200 + oy], 180, 360, fill=INK, width=14)


PHOTOS = {
    "trousers": lambda: photo(TROUSERS),
    "t-shirt": lambda: photo(TSHIRT, offset=(60, 20), seed=1),  # off-centre on the table
    "sneaker": lambda: photo(SNEAKER, offset=(-60, 60), seed=2),
    "bag": lambda: photo(draw=draw_bag, seed=3),
}


def horse() -> Image.Image:
    """scikit-image's horse silhouette: a dark animal on white, as a product on a white studio background."""
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(np.where(skimage_data.horse(), 255, 0).astype(np.uint8))  # True is the white background


def assert_fashion_form(out: Image.Image) -> np.ndarray:
    assert out.mode == "L" and out.size == (28, 28)
    a = np.asarray(out, np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    assert np.median(border) < 10, "the background must be black, as in Fashion-MNIST"
    assert a.max() > 150, "the product must be bright"
    ys, xs = np.nonzero(a > 40)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 24, "the longer side must fill the frame"
    cy, cx = (a * np.indices(a.shape)[0]).sum() / a.sum(), (a * np.indices(a.shape)[1]).sum() / a.sum()
    assert abs(cx - 13.5) < 4 and abs(cy - 13.5) < 4, f"the product must be centred, centre of mass {(cy, cx)}"
    return a


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_on_a_table_becomes_fashion_mnist_form(name):
    assert_fashion_form(fashionize(PHOTOS[name]()))


def test_position_on_the_table_does_not_matter():
    centred = np.asarray(fashionize(photo(TROUSERS)), np.float32)
    moved = np.asarray(fashionize(photo(TROUSERS, offset=(140, 10), seed=5)), np.float32)
    assert np.abs(centred - moved).mean() < 12  # same product, same 28x28 picture up to noise


def test_scikit_image_silhouette_on_white():
    a = assert_fashion_form(fashionize(horse()))
    assert (a[:, 0] < 10).all() or (a[0] < 10).all()  # a horse is wider than tall: free rows above or below


def test_transparent_product_png_is_a_product_on_white():
    rgba = Image.new("RGBA", (200, 300), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle([60, 40, 140, 260], fill=(20, 20, 20, 255))
    a = assert_fashion_form(fashionize(rgba))
    assert a[14, 14] > 200


def test_light_product_on_dark_background_is_not_negated():
    dark = Image.new("RGB", (300, 300), (20, 20, 24))
    ImageDraw.Draw(dark).polygon(TROUSERS, fill=(230, 230, 230))
    assert_fashion_form(fashionize(dark))


def test_fashion_mnist_image_is_left_as_it_is(fashion_dir):
    from pathlib import Path

    example = sorted((Path(__file__).parent.parent / "convzoo" / "assets" / "fashion_examples").glob("*.png"))[0]
    original = Image.open(example)
    assert np.array_equal(np.asarray(fashionize(original)), np.asarray(original))


def test_flat_image_is_refused_with_a_reason():
    with pytest.raises(BadInputError, match="no product"):
        fashionize(Image.new("RGB", (64, 64), (200, 200, 200)))


# with a trained classifier --------------------------------------------------------------------

SENSIBLE = {"trousers": {"Trouser"}, "bag": {"Bag"}, "t-shirt": {"T-shirt/top", "Shirt", "Pullover"},
            "sneaker": {"Sneaker", "Sandal", "Ankle boot"}}


@pytest.mark.parametrize("name", SENSIBLE)
def test_shipped_lenet_classifies_photos_sensibly(shipped_store, name):
    if shipped_store.find("lenet5-fashion") is None:
        pytest.skip("models/lenet5-fashion is not in the shipped store yet (issue 5 trains and exports it); "
                    "`convzoo train lenet5-fashion && convzoo export lenet5-fashion --out models` to run this")
    model = load_model("lenet5-fashion", shipped_store)
    top = model.top_k(fashionize(PHOTOS[name]()), k=2)
    assert next(iter(top)) in SENSIBLE[name], f"{name}: {top}"
