"""Convolution thinking tab: the lecture's "what if the pixels were randomly shuffled?", answered by four models.

LeNet-5 and an MLP of its size were each trained twice with one recipe: on plain Fashion-MNIST and on
images whose pixels are in one fixed shuffled order (the order lives inside the shuffled models' ONNX
graphs). The tab shows the measured 2x2 table, an image beside its shuffled version, the first-layer
filters of the two LeNets, and all four models' top 3 on an image the learner picks or draws.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr
import numpy as np

from convzoo import registry
from convzoo.demos.classify import ood_notice
from convzoo.demos.common import (
    allow_files,
    as_image,
    enlarge,
    fashion_examples,
    intro,
    product_sketchpad,
    readable_errors,
    safe_image,
    served_file,
)
from convzoo.demos.inside import probe_stored
from convzoo.demos.plots import filter_grid
from convzoo.errors import ConvzooError
from convzoo.fashionize import fashionize
from convzoo.permutation import shuffle_pixels
from convzoo.registry import Store
from convzoo.runtime import load_model, resize_for, to_rgb_or_gray

INTRO = ("**Convolution thinking.** The lecture asks: *what would you do if the pixels were randomly shuffled?* "
         "A multilayer perceptron should not care: shuffling its inputs only relabels the weights of its first "
         "layer. A CNN should: its small filters assume that neighbouring pixels belong together. Four models "
         "answer with measurements, each trained with the same recipe on Fashion-MNIST, plain or with one fixed "
         "shuffle of the 784 pixel positions (applied after augmentation, inside the model, so the ONNX files "
         "take ordinary images).")
PAIRS = {"LeNet-5": ("lenet5-fashion", "lenet5-fashion-shuffled"), "MLP": ("mlp-fashion", "mlp-fashion-shuffled")}
MODELS = [name for pair in PAIRS.values() for name in pair]
SHUFFLE_SEED = int(registry.get("lenet5-fashion-shuffled").arch_args["pixel_shuffle_seed"])
SEEN = registry.get("lenet5-fashion").preprocess  # all four share Fashion-MNIST's 28x28 grey input
TABLE_HEADERS = ["model", "plain pixels", "shuffled pixels", "change"]


def _accuracy(store: Store, name: str) -> float | None:
    stored = store.find(name)
    value = stored.metrics.get("accuracy") if stored else None
    return float(value) if isinstance(value, (int, float)) else None


def experiment_rows(store: Store) -> list[list[str]]:
    """The 2x2 table: test accuracy as `convzoo eval` measured it, or what is missing."""
    rows = []
    for arch, pair in PAIRS.items():
        a, b = (_accuracy(store, name) for name in pair)
        cells = [f"{v:.4f}" if v is not None else f"{name}: not in the store" for v, name in zip((a, b), pair)]
        change = f"{(b - a) * 100:+.2f} pt" if a is not None and b is not None else "-"
        rows.append([arch, *cells, change])
    return rows


def filters_picture(store: Store) -> str | None:
    """The first-layer filters of the plain and the shuffled LeNet, one figure each, stacked."""
    pictures = []
    for name in PAIRS["LeNet-5"]:
        if store.find(name) is None:
            continue
        probe = probe_stored(store, name)
        pictures.append(np.asarray(filter_grid(probe.weights, columns=6, title=name).convert("RGB")))
    if not pictures:
        return None
    width = max(p.shape[1] for p in pictures)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
    return served_file(np.concatenate(padded, axis=0))


@readable_errors
def compare(store: Store, image: Any) -> tuple:
    """The image as the models see it, its shuffled version, and each model's top 3."""
    picture = fashionize(as_image(image))  # a photo is brought to Fashion-MNIST's form, as the Classify tab does
    pixels = np.asarray(resize_for(to_rgb_or_gray(picture, SEEN.color), SEEN))  # the models' own resize
    tops = []
    for name in MODELS:
        if store.find(name) is None:
            tops.append({f"{name} is not in the store": 0.0})
            continue
        tops.append(load_model(name, store).predict(picture, k=3).as_dict())
    return (served_file(enlarge(pixels, 224)), served_file(enlarge(shuffle_pixels(pixels, SHUFFLE_SEED), 224)),
            *tops)


@readable_errors
def think(store: Store, image: Any) -> tuple:
    """``compare``, then the out-of-distribution notice of the plain LeNet-5 (the CNN of the pairs) on the same
    picture, as Classify gives it."""
    picture = fashionize(as_image(image))
    name = PAIRS["LeNet-5"][0]
    notice = ood_notice(store, name, load_model(name, store).preprocess(picture)) if store.find(name) else ""
    return *compare(store, picture), notice


def first_answer(store: Store, example: str | None) -> tuple:
    """The tab as it opens: the first example already compared, so nothing is empty (issue 23)."""
    try:
        return think(store, example) if example else (None,) * (len(MODELS) + 3)
    except gr.Error:  # a model missing or broken: the tab still opens, the button says why when pressed
        return (None,) * (len(MODELS) + 3)


PAGE_CSS = """
#thinking-image img, #thinking-plain img, #thinking-shuffled img { image-rendering: pixelated; width: 100%;
  height: 100%; object-fit: contain; }
.thinking-top h2 { font-size: var(--text-xl) !important; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
"""


def tab(store: Store) -> None:
    allow_files()
    intro(INTRO)
    gr.Dataframe(experiment_rows(store), headers=TABLE_HEADERS, interactive=False, elem_id="thinking-table",
                 label="Test accuracy on the 10,000 Fashion-MNIST test images (convzoo eval)")
    examples = fashion_examples()
    start = next((p for p in examples if p.endswith("-ankle-boot.png")), examples[0] if examples else None)
    *first_pictures, first_notice = first_answer(store, start)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            with gr.Tab("Pick or upload"):
                image = safe_image(value=start, type="pil", image_mode=None, label="Image", height=260,
                                   elem_id="thinking-image")
                if examples:
                    gr.Examples(examples, inputs=image, label="Fashion-MNIST test images")
            with gr.Tab("Draw"):
                sketch = product_sketchpad("thinking-sketch")
                use_sketch = gr.Button("Compare on the drawing", elem_id="thinking-sketch-run")
            run = gr.Button("Compare the four models", variant="primary", elem_id="thinking-run")
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                plain = gr.Image(first_pictures[0], label="What the plain models see", interactive=False, height=240,
                                 elem_id="thinking-plain")
                shuffled = gr.Image(first_pictures[1], label="What the shuffled models see", interactive=False,
                                    height=240, elem_id="thinking-shuffled")
            notice = gr.Markdown(first_notice, elem_id="thinking-ood")
            tops = []
            for pair in PAIRS.values():
                with gr.Row():
                    tops += [gr.Label(first_pictures[2 + MODELS.index(name)], num_top_classes=3, label=name,
                                      min_width=160, elem_id=f"thinking-top-{name}", elem_classes=["thinking-top"])
                             for name in pair]
    try:
        filters = filters_picture(store)
    except ConvzooError as e:  # a broken LeNet folder: say so here, the rest of the tab works
        gr.Markdown(f"The filters cannot be shown: {e}")
        filters = None
    if filters:
        gr.Markdown("**First-layer filters.** The plain LeNet's 5x5 filters have connected regions of one sign "
                    "(edge and blob detectors); the shuffled LeNet's weigh scattered single pixels, since the pixels "
                    "under a 5x5 window are no longer neighbours in the garment.")
        gr.Image(filters, interactive=False, show_label=False, elem_id="thinking-filters")
    outputs = [plain, shuffled, *tops, notice]
    run.click(partial(think, store), image, outputs, api_name="think")
    image.change(lambda value: think(store, value) if value is not None else (gr.skip(),) * len(outputs), image,
                 outputs, api_name=False)
    use_sketch.click(partial(think, store), sketch, outputs, api_name="think_sketch")
