"""Every model tab in a real browser (Debian's Chromium, headless), on the shipped models: load, act, see
the result, screenshot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from convzoo.demos.common import skimage_photos

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

EXAMPLES = Path(__file__).resolve().parent.parent / "convzoo" / "assets" / "fashion_examples"
MEMBRANES = EXAMPLES.parent / "membranes"
FASHION = re.compile(r"T-shirt/top|Trouser|Pullover|Dress|Coat|Sandal|Shirt|Sneaker|Bag|Ankle boot")


@pytest.fixture(scope="module")
def app_url(shipped_store):
    """The app as `convzoo demo` and the Space run it: on the models this project trained and ships."""
    from conftest import launch_gradio

    yield from launch_gradio(shipped_store)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("browser") / "section.png"
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(80, 200, (160, 200), dtype=np.uint8)).convert("RGB")
    ImageDraw.Draw(image).line([(0, 80), (200, 80)], fill=(20, 20, 20), width=6)
    image.save(path)
    return str(path)


def open_tab(page, app_url: str, title: str) -> None:
    page.goto(app_url)
    page.get_by_role("tab", name=title, exact=True).click()


def upload(page, elem_id: str, path: str) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(path)


def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"tab-{name}.png"), full_page=True)


def test_classify_tab(page, app_url, artifacts):
    open_tab(page, app_url, "Classify")
    expect(page.get_by_text("what the model sees", exact=False).first).to_be_visible()
    upload(page, "classify-image", str(sorted(EXAMPLES.glob("*-ankle-boot.png"))[0]))
    page.locator("#classify-run").click()
    expect(page.locator("#classify-top5")).to_contain_text("Ankle boot")  # a real test image, a trained model
    expect(page.locator("#classify-info")).to_contain_text("Inference")
    expect(page.locator("#classify-seen img")).to_be_visible()
    shot(page, artifacts, "classify")


def test_classify_tab_bad_upload_gets_a_sentence(page, app_url, tmp_path):
    open_tab(page, app_url, "Classify")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), (200, 200, 200)).save(blank)
    upload(page, "classify-image", str(blank))
    page.locator("#classify-run").click()
    expect(page.get_by_text("there is no product to find", exact=False).first).to_be_visible()


def test_classify_tab_on_a_phone(browser, app_url, artifacts):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    try:
        open_tab(page, app_url, "Classify")
        upload(page, "classify-image", str(sorted(EXAMPLES.glob("*-trouser.png"))[0]))
        page.locator("#classify-run").click()
        expect(page.locator("#classify-top5")).to_contain_text(FASHION)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 2, f"the page scrolls sideways on a phone ({width}px wide)"
        page.screenshot(path=str(artifacts / "tab-classify-phone.png"), full_page=True)
    finally:
        context.close()


def test_style_tab(page, app_url, artifacts, photo):
    open_tab(page, app_url, "Style")
    upload(page, "style-content", (skimage_photos() or [photo])[0])
    page.locator("#style-run").click()
    expect(page.locator("#style-info")).to_contain_text(re.compile(r"\d+x\d+ px in \d+ ms"))
    expect(page.locator("#style-result img")).to_be_visible()
    shot(page, artifacts, "style")


def test_segment_tab(page, app_url, artifacts, photo):
    open_tab(page, app_url, "Segment")
    upload(page, "segment-image", str(next(iter(sorted(MEMBRANES.glob("*.png"))), photo)))
    page.locator("#segment-run").click()
    expect(page.locator("#segment-fractions")).to_contain_text(re.compile("membrane|cell"))
    expect(page.locator("#segment-overlay img")).to_be_visible()
    shot(page, artifacts, "segment")


def test_invariance_tab(page, app_url, artifacts):
    open_tab(page, app_url, "Invariance lab")
    page.locator("#invariance-predict").click()
    expect(page.locator("#invariance-top5")).to_contain_text(FASHION)
    page.locator("#invariance-run").click()
    expect(page.locator("#invariance-summary")).to_contain_text("turned by 90°")
    expect(page.locator("#invariance-plot img")).to_be_visible()
    shot(page, artifacts, "invariance")


def test_models_tab(page, app_url, artifacts):
    open_tab(page, app_url, "Models")
    expect(page.locator("#models-table")).to_contain_text("lenet5-fashion")
    expect(page.locator("#models-card")).to_contain_text("Run it with onnxruntime")  # the first stored model's card
    page.locator("#models-table").get_by_text("lenet5-fashion", exact=True).first.click()
    picture = page.locator("#models-pictures img").first
    expect(picture).to_be_visible()  # the confusion matrix, loaded: a broken image has no natural width
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=picture.element_handle())
    page.locator("#models-table").get_by_text("unet-membranes", exact=True).click()  # a row chooses a model
    expect(page.locator("#models-card")).to_contain_text("U-Net")
    expect(page.locator("#models-code")).to_contain_text("InferenceSession")
    shot(page, artifacts, "models")


def test_convolution_thinking_tab(page, app_url, artifacts):
    open_tab(page, app_url, "Convolution thinking")
    table = page.locator("#thinking-table")
    expect(table).to_contain_text("LeNet-5")
    expect(table).to_contain_text(re.compile(r"[+-]\d+\.\d\d pt"))  # both pairs measured: a change is shown
    upload(page, "thinking-image", str(sorted(EXAMPLES.glob("*-trouser.png"))[0]))
    page.locator("#thinking-run").click()
    for name in ("lenet5-fashion", "lenet5-fashion-shuffled", "mlp-fashion", "mlp-fashion-shuffled"):
        expect(page.locator(f"#thinking-top-{name}")).to_contain_text(FASHION)
    expect(page.locator("#thinking-top-lenet5-fashion")).to_contain_text("Trouser")
    for elem in ("thinking-plain", "thinking-shuffled", "thinking-filters"):
        expect(page.locator(f"#{elem} img")).to_be_visible()
    shot(page, artifacts, "thinking")
