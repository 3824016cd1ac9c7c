"""Every model tab's main function through gradio_client, against the whole app launched on the tiny store."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from convzoo.registry import Store
from convzoo.runtime import load_model

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "convzoo" / "assets" / "fashion_examples"


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("uploads")
    photo = Image.new("RGB", (300, 200), (210, 200, 190))
    ImageDraw.Draw(photo).rectangle([120, 40, 180, 170], fill=(30, 30, 30))
    photo.save(d / "photo.png")
    gradient = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
    Image.fromarray(np.stack([gradient] * 3, -1)).save(d / "gradient.png")
    (d / "notes.png").write_text("this is a text file with an image's name")
    Image.new("L", (7000, 6000)).save(d / "huge.png")  # 42 Mpx: over the app's limit, a few KB on disk
    sketch = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(sketch).rectangle([100, 40, 180, 240], fill=(0, 0, 0, 255))
    sketch.save(d / "sketch.png")
    Image.new("RGBA", (280, 280), (255, 255, 255, 255)).save(d / "blank.png")
    return {p.stem: str(p) for p in d.iterdir()}


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_the_model_tabs_name_their_endpoints(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/classify", "/classify_sketch", "/stylize", "/segment", "/invariance", "/invariance_sweep",
            "/model_card"} <= names


# classify -------------------------------------------------------------------------------------

def test_classify_a_fashion_mnist_example(client, tiny_store):
    example = sorted(EXAMPLES.glob("*-ankle-boot.png"))[0]
    label, seen, info, _notice = client.predict("tiny-fashion", handle_file(str(example)), True, api_name="/classify")
    probs = confidences(label)
    assert len(probs) == 5 and set(probs) <= set(load_model("tiny-fashion", tiny_store).labels)
    assert 0.0 < sum(probs.values()) <= 1.0 + 1e-6
    expected = load_model("tiny-fashion", tiny_store).top_k(Image.open(example), k=1)  # the same runtime as the service
    assert label["label"] == next(iter(expected))
    assert Image.open(seen).size[0] >= 28 * 8  # the 28x28 tensor is drawn large
    assert "ms" in info and "(1, 1, 28, 28)" in info and "already in Fashion-MNIST form" in info


def test_fashionize_toggle_changes_what_the_model_sees(client, files):
    _, with_step, _, _ = client.predict("tiny-fashion", handle_file(files["photo"]), True, api_name="/classify")
    _, without, _, _ = client.predict("tiny-fashion", handle_file(files["photo"]), False, api_name="/classify")
    on, off = np.asarray(Image.open(with_step).convert("L")), np.asarray(Image.open(without).convert("L"))
    assert on[:, 0].mean() < 30, "fashionized: the table becomes a black background"
    assert off[:, 0].mean() > 200, "not fashionized: the light table stays light"


def test_classify_an_rgb_model(client, files):
    label, _, info, _ = client.predict("tiny-cifar", handle_file(files["photo"]), True, api_name="/classify")
    assert len(label["confidences"]) == 5 and "(1, 3, 32, 32)" in info and "fashionized" not in info


def test_classify_a_drawing(client, files):
    sketch = {"background": None, "layers": [], "composite": handle_file(files["sketch"])}
    label, seen, info, _ = client.predict("tiny-fashion", sketch, True, api_name="/classify_sketch")
    assert len(label["confidences"]) == 5 and "fashionized" in info
    assert np.asarray(Image.open(seen).convert("L"))[:, 0].mean() < 30  # black on white: inverted like the data


@pytest.mark.parametrize("upload, message", [("notes", "not an image"), ("huge", "more than the limit of 16,777,216")])
def test_bad_uploads_get_a_sentence(client, files, upload, message):
    with pytest.raises(Exception, match=message):
        client.predict("tiny-fashion", handle_file(files[upload]), True, api_name="/classify")


def test_empty_sketch_gets_a_sentence(client, files):
    blank = {"background": None, "layers": [], "composite": handle_file(files["blank"])}
    with pytest.raises(Exception, match="sketch is empty"):
        client.predict("tiny-fashion", blank, True, api_name="/classify_sketch")


def test_the_classify_calls_stay_queued(tiny_store):
    """queue=False would save 3 to 5 ms a call, but Gradio 6.31's page then shows a failed call as a bare "Error",
    without its sentence (test_demo_browser.py::test_classify_tab_bad_upload_gets_a_sentence; issue 12)."""
    from convzoo.demos.app import build_app

    config = build_app(tiny_store).get_config_file()
    top5 = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "classify-top5")
    events = [d for d in config["dependencies"] if top5 in d["outputs"]]
    assert len(events) == 3 and all(d["queue"] is not False for d in events)  # button, upload, drawing


def test_the_demo_sets_how_often_gradio_summarises_its_calls(monkeypatch):
    from convzoo.demos import use_gradio_env

    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    use_gradio_env()
    assert os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] == "100"
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "7")
    use_gradio_env()
    assert os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] == "7"  # the user's own value wins


def test_pictures_are_written_at_zlib_level_1():
    """The demo's PNGs use zlib's fastest level: a 512-px stylised photo encodes about 4x faster (issue 12)."""
    from convzoo.demos.common import served_file

    data = Path(served_file(np.arange(280 * 280, dtype=np.uint32).reshape(280, 280).astype(np.uint8))).read_bytes()
    zlib_header = data[data.index(b"IDAT") + 4:][:2]
    assert zlib_header[0] == 0x78 and zlib_header[1] >> 6 == 0  # FLEVEL 0: levels 0 and 1


def test_a_model_missing_from_the_store_says_how_to_get_it(tiny_store, files):
    import gradio as gr

    from convzoo.demos.classify import classify

    # the page only offers stored models; a model removed after the page loaded still gets a sentence
    with pytest.raises(gr.Error, match="convzoo train lenet5-fashion"):
        classify(tiny_store, "lenet5-fashion", Image.open(files["photo"]))


# style ----------------------------------------------------------------------------------------

def test_stylize_blends_and_caps_the_size(client, files):
    # tiny-style paints 255 - pixel: half strength turns every pixel to mid-grey
    full, info, png = client.predict("tiny-style", handle_file(files["gradient"]), 1.0, 512, api_name="/stylize")
    src = np.asarray(Image.open(files["gradient"]).convert("RGB"), np.int16)
    assert np.abs(np.asarray(Image.open(full).convert("RGB"), np.int16) - (255 - src)).max() <= 1
    half, _, _ = client.predict("tiny-style", handle_file(files["gradient"]), 0.5, 512, api_name="/stylize")
    assert np.abs(np.asarray(Image.open(half).convert("L"), np.int16) - 127).max() <= 2
    capped, info, png = client.predict("tiny-style", handle_file(files["photo"]), 1.0, 128, api_name="/stylize")
    assert max(Image.open(capped).size) == 128 and "128x85" in info
    assert png.endswith(".png") and Image.open(png).format == "PNG" and Image.open(png).size == (128, 85)
    assert Path(png).read_bytes() == Path(capped).read_bytes()  # the download is the picture shown, encoded once


# segment --------------------------------------------------------------------------------------

def test_segment_gives_overlay_mask_and_fractions(client, files, tiny_store):
    overlay, mask_png, fractions, info = client.predict("tiny-membranes", handle_file(files["photo"]), 0.5,
                                                        api_name="/segment")
    assert Image.open(overlay).size == (300, 200)
    mask = np.asarray(Image.open(mask_png))
    assert mask.shape == (200, 300) and set(np.unique(mask)) <= {0, 255}
    probs = confidences(fractions)
    assert set(probs) == {"membrane", "cell"} and abs(sum(probs.values()) - 1) < 1e-6
    assert abs(probs["membrane"] - (mask == 0).mean()) < 1e-6
    expected = load_model("tiny-membranes", tiny_store).segment(Image.open(files["photo"])).argmax(0)
    assert np.array_equal(mask == 255, expected == 1)


# invariance lab -------------------------------------------------------------------------------

def test_invariance_predicts_the_moved_image(client):
    still, label = client.predict("tiny-fashion", "0002-trouser", 0, 0, 0, 1.0, api_name="/invariance")
    turned, label_turned = client.predict("tiny-fashion", "0002-trouser", 0, 0, 90, 1.0, api_name="/invariance")
    a, b = np.asarray(Image.open(still).convert("L")), np.asarray(Image.open(turned).convert("L"))
    assert a.shape == b.shape and a.shape[0] >= 28 * 8
    assert np.array_equal(np.rot90(a), b) or np.abs(np.rot90(a).astype(int) - b).mean() < 20  # trousers lie down
    assert len(label["confidences"]) == 5


def test_invariance_sweep_plots_and_explains(client):
    plot, summary = client.predict("tiny-fashion", "0002-trouser", api_name="/invariance_sweep")
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image")
    assert "90°" in summary and "P(" in summary


# models ---------------------------------------------------------------------------------------

def test_model_card_download_and_ten_lines(client, tiny_store):
    card, onnx_file, code, pictures = client.predict("tiny-fashion", api_name="/model_card")
    stored = tiny_store.get("tiny-fashion")
    assert card.startswith("# tiny-fashion") and "](confusion.png)" not in card
    assert hashlib.sha256(Path(onnx_file).read_bytes()).hexdigest() == stored.sha256
    assert "onnxruntime" in code and "convzoo.preprocess" in code


def test_model_card_of_a_model_not_in_the_store(client):
    card, onnx_file, code, pictures = client.predict("vgg11-fashion", api_name="/model_card")
    assert "not in the store" in card and "convzoo train vgg11-fashion" in card and onnx_file is None
    assert pictures["visible"] is False  # no pictures: the gallery is hidden


def test_a_cards_pictures_move_to_the_gallery_and_links_outside_the_folder_are_dropped(tmp_path):
    from convzoo.demos.models_tab import card_pictures

    (tmp_path / "confusion.png").write_bytes(b"png")
    (tmp_path.parent / "secret.png").write_bytes(b"png")
    card, pictures = card_pictures("a\n![confusion matrix](confusion.png)\n![x](../secret.png)\n![y](gone.png)\n",
                                   tmp_path)
    assert pictures == [(str((tmp_path / "confusion.png").resolve()), "confusion matrix")]
    assert "](" not in card and "shown beside the card" in card


def test_every_tab_explains_a_missing_model(tmp_path):
    from convzoo.demos.app import build_app

    config = build_app(Store(tmp_path)).get_config_file()
    texts = json.dumps([c.get("props", {}).get("value") for c in config["components"]])
    for task in ("classification", "style", "segmentation"):
        assert f"No {task} model in the store" in texts
    assert "convzoo train lenet5-fashion" in texts


def test_fashion_examples_ship_with_their_licence():
    from convzoo.zoo import FASHION_MNIST

    files = sorted(EXAMPLES.glob("*.png"))
    slugs = {p.stem.split("-", 1)[1] for p in files}
    assert len(slugs) == len(FASHION_MNIST)  # every class has a real test image
    assert all(Image.open(p).size == (28, 28) and Image.open(p).mode == "L" for p in files)
    licence = (EXAMPLES / "LICENSE").read_text()
    assert "Zalando SE" in licence and "MIT" in licence


def test_concurrent_identical_calls_all_get_their_answer(app_url, files):
    """16 identical calls at once, three rounds: identical outputs once shared one cache file that Gradio
    rewrote while it was being sent, and 1 or 2 calls in 16 came back cut short."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [Client(app_url, verbose=False) for _ in range(16)]  # made first: the calls, not the set-up, race

    def call(client: Client):
        label, seen, _info, _ = client.predict("tiny-fashion", handle_file(files["gradient"]), False, api_name="/classify")
        return label["label"], Image.open(seen).size

    with ThreadPoolExecutor(16) as pool:
        answers = [answer for _ in range(3) for answer in pool.map(call, clients)]
    assert len(answers) == 48 and len(set(answers)) == 1, set(answers)
