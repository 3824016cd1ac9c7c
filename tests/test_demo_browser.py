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


# issue 23: the app as a teacher would have it --------------------------------------------------

def test_classify_says_when_a_picture_is_not_a_product(page, app_url):
    open_tab(page, app_url, "Classify")
    upload(page, "classify-image", skimage_photos(("chelsea",))[0])  # the cat once called "Sandal 91%"
    expect(page.locator("#classify-ood")).to_contain_text("does not look like the ten Fashion-MNIST products")
    upload(page, "classify-image", str(sorted(EXAMPLES.glob("*-ankle-boot.png"))[0]))
    expect(page.locator("#classify-ood")).to_contain_text("Looks like the ten Fashion-MNIST products")
    expect(page.get_by_text("Not products (an out-of-distribution demonstration)", exact=False)).to_be_visible()


def test_a_transparent_png_is_laid_on_white(page, app_url, tmp_path):
    path = tmp_path / "trouser.png"  # a dark product on a transparent background, as shops cut them out
    image = Image.new("RGBA", (120, 160), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle([35, 10, 85, 150], fill=(20, 20, 40, 255))
    image.save(path)
    open_tab(page, app_url, "Classify")
    upload(page, "classify-image", str(path))
    expect(page.locator("#classify-info")).to_contain_text("transparent parts laid on white")
    seen = np.asarray(_fetch_picture(page, "#classify-seen img"))
    assert seen.std() > 30, "the product must not vanish into a flat tensor"


def _fetch_picture(page, selector: str) -> Image.Image:
    """The picture an <img> shows, as the browser fetched it."""
    import base64
    import io

    data = page.locator(selector).evaluate("""async img => {
        const blob = await (await fetch(img.src)).blob();
        return await new Promise(done => { const r = new FileReader(); r.onload = () => done(r.result);
                                           r.readAsDataURL(blob); });
    }""")
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L")


def test_the_brush_is_ready_to_draw(page, app_url):
    open_tab(page, app_url, "Classify")
    page.get_by_role("tab", name="Draw").first.click()
    canvas = page.locator("#classify-sketch canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.2)
    page.mouse.down()  # no tool picked first: the stroke must draw (issue 23)
    for step in range(1, 16):
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * (0.2 + 0.04 * step))
    page.mouse.up()
    page.locator("#classify-sketch-run").click()
    expect(page.locator("#classify-top5")).to_contain_text(FASHION)
    expect(page.locator("[data-testid='toast-body']")).to_have_count(0)


def test_a_painting_click_runs_the_style(page, app_url, photo):
    open_tab(page, app_url, "Style")
    expect(page.locator("#style-download button, button#style-download").first).to_be_disabled()
    upload(page, "style-content", (skimage_photos() or [photo])[0])
    expect(page.locator("#style-content img")).to_be_visible()
    page.locator("#style-gallery img").nth(1).click()  # no press on Stylise: choosing a painting asks for it
    expect(page.locator("#style-info")).to_contain_text(re.compile(r"style-\S+: \d+x\d+ px in \d+ ms"), timeout=60_000)
    expect(page.locator("#style-download button, button#style-download").first).to_be_enabled()
    caption = page.locator("#style-gallery .caption-label").first
    assert caption.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "a painting's name is cut short"


def test_segment_refuses_a_1x1_image(page, app_url, tmp_path):
    tiny = tmp_path / "one-pixel.png"
    Image.new("L", (1, 1), 128).save(tiny)
    open_tab(page, app_url, "Segment")
    upload(page, "segment-image", str(tiny))
    page.locator("#segment-run").click()
    expect(page.locator("[data-testid='toast-body']").first).to_contain_text("1x1 pixels, too small to segment")
    expect(page.locator("#segment-fractions")).not_to_contain_text("membrane")


def test_invariance_sweeps_every_slider(page, app_url):
    open_tab(page, app_url, "Invariance lab")
    page.locator("#invariance-run").click()
    summary = page.locator("#invariance-summary")
    expect(summary).to_contain_text("shifts up to ±10% either way", timeout=60_000)
    expect(summary).to_contain_text("at 0.6x the size or smaller")
    expect(summary).to_contain_text("at 1.6x or larger")
    expect(page.locator("#invariance-plot img")).to_be_visible()


def test_inside_a_trained_cnn_offers_only_convolutional_models(page, app_url):
    open_tab(page, app_url, "Filter playground")
    page.get_by_role("tab", name="Inside a trained CNN").click()
    page.get_by_label("Classifier from the model store").click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    names = [text.replace("✓", "").strip() for text in options.all_inner_texts()]  # the chosen one is ticked
    assert "lenet5-fashion" in names and not any(n.startswith("mlp-") for n in names), names


def test_convolution_thinking_opens_with_an_answer(page, app_url):
    open_tab(page, app_url, "Convolution thinking")  # nothing pressed
    for name in ("lenet5-fashion", "mlp-fashion"):
        expect(page.locator(f"#thinking-top-{name}")).to_contain_text(FASHION)
    expect(page.locator("#thinking-plain img")).to_be_visible()
    expect(page.locator("#thinking-ood")).to_contain_text("Fashion-MNIST products")
    shown = page.locator("#thinking-image img")
    assert shown.evaluate("img => img.getBoundingClientRect().width") > 150, "the 28x28 example is a tiny icon"
    headline = page.locator("#thinking-top-lenet5-fashion h2").first
    lines = headline.evaluate("h => { const r = document.createRange(); r.selectNodeContents(h); "
                              "return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }")
    assert lines == 1, "the top class wraps onto two lines"


def test_models_lists_the_store_and_fits(page, app_url, shipped_store):
    open_tab(page, app_url, "Models")
    page.locator("#models-model input").click()
    expect(page.get_by_role("option").first).to_be_visible()
    names = [text.replace("✓", "").strip() for text in page.get_by_role("option").all_inner_texts()]
    assert sorted(names) == sorted(shipped_store.names())
    page.keyboard.press("Escape")
    table = page.locator("#models-table .table-wrap, #models-table table").first
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1"), "the registry table scrolls sideways"
    expect(page.get_by_text("pixel error for segmentation (lower is better)", exact=False)).to_be_visible()
    page.locator("#models-table").get_by_text("vgg11-fashion", exact=True).click()  # not in the store
    expect(page.locator("#models-card")).to_contain_text("vgg11-fashion is not in the store")
