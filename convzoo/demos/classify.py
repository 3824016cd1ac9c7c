"""Classify tab: pick a classifier from the store, give it an image, see what it sees and what it says."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import ood
from convzoo.demos.common import (
    SUGGESTED,
    Timer,
    as_image,
    dataset_of,
    fashion_examples,
    open_model_tab,
    product_sketchpad,
    readable_errors,
    safe_image,
    served_file,
    skimage_photos,
    tensor_picture,
)
from convzoo.fashionize import fashionize, flatten, has_alpha, is_fashion_form
from convzoo.registry import Store
from convzoo.runtime import load_model
from convzoo.tasks.classification import Classification

INTRO = ("**Classify** runs a trained classifier from the model store on your image with ONNX Runtime and shows "
         "its five most probable classes. The picture under the prediction is exactly the tensor the network "
         "receives, after the preprocessing written in the model file itself, so you can see why a photo can fool a 28x28 model.")
FASHIONIZE_HELP = ("Fashion-MNIST models only saw 28x28 grey products, bright on black and filling the frame. "
                   "This step converts your photo the way the data set's authors converted theirs (trim the "
                   "background, fit the longer side, centre on a square, invert to a dark background, grey).")
# The tab opens with the classifier whose out-of-distribution notice was measured best: ResNet-18 flags 97.1% of the
# non-product pictures (LeNet-5 84.3%, AlexNet 87.1%) at 2% of the test set (`python scripts/ood_measure.py measure`)
OPENS_WITH = "resnet18-fashion"
# No product photo with a clear licence ships here (issue 23): these say what they are for instead
STRANGERS = ("chelsea", "coffee", "rocket")
STRANGERS_LABEL = ("Not products (an out-of-distribution demonstration): a cat, a cup, a rocket. The model still "
                   "names one of its ten classes; the notice beside the answer says the picture is unlike them")
PAGE_CSS = """
#classify-image img, #classify-seen img { image-rendering: pixelated; }
"""


def fashion_default(store: Store, name: str | None) -> bool:
    return dataset_of(store, name) == "fashion-mnist"


def model_input(store: Store, name: str, picture: Image.Image, use_fashionize: bool = True
                ) -> tuple[np.ndarray, list[str]]:
    """The exact tensor the model receives, and the steps that made it (``scripts/ood_measure.py`` measures the
    out-of-distribution notice through this very path)."""
    steps = []
    if has_alpha(picture):
        steps.append("transparent parts laid on white")
        picture = flatten(picture)
    if use_fashionize and fashion_default(store, name):
        steps.append("already in Fashion-MNIST form" if is_fashion_form(picture) else "fashionized")
        picture = fashionize(picture)
    return load_model(name, store).preprocess(picture), steps


def ood_notice(store: Store, name: str, x: np.ndarray, what: str = "the ten Fashion-MNIST products") -> str:
    """A sentence on whether the input looks like the training data; empty for a model never calibrated."""
    stored = store.get(name)
    found = ood.verdict(name, stored.onnx_path, stored.sha256, x)
    return found.sentence(what) if found is not None else ""


@readable_errors
def classify(store: Store, name: str, image: Any, use_fashionize: bool = True) -> tuple[dict, str, str, str]:
    """Top-5 probabilities, the picture of the preprocessed tensor, a line with the timing, and the
    out-of-distribution notice."""
    if not name:
        raise gr.Error("choose a model first")
    picture = as_image(image)
    model = load_model(name, store)
    with Timer() as prep:
        x, steps = model_input(store, name, picture, use_fashionize)
    with Timer() as infer:
        logits = model.run(x)
    top5 = Classification.of_logits(logits[0], model.labels, 5).as_dict()  # the task's answer, as predict makes it
    pre = model.preprocess_spec
    done = ", ".join([*steps, "resized", "normalized"])
    info = (f"Inference {infer.ms:.1f} ms, preprocessing {prep.ms:.1f} ms ({done}). "
            f"Tensor {tuple(x.shape)} float32, values {x.min():.2f}..{x.max():.2f}: "
            f"x = (pixel × {pre.scale:.6g} − mean {list(pre.mean)}) / std {list(pre.std)}.")
    return top5, served_file(tensor_picture(x)), info, ood_notice(store, name, x)


def classify_if_image(store: Store, name: str, image: Any, use_fashionize: bool = True):
    """On upload or example click: classify at once; a cleared image leaves the outputs as they are."""
    return (gr.skip(),) * 4 if image is None else classify(store, name, image, use_fashionize)


def classify_sketch(store: Store, name: str, sketch: Any, use_fashionize: bool = True) -> tuple[dict, str, str, str]:
    return classify(store, name, sketch, use_fashionize)


def tab(store: Store) -> None:
    choices = open_model_tab(store, "classification", INTRO)
    if not choices:
        return
    names = [v for _, v in choices]
    preferred = [n for n in (OPENS_WITH, SUGGESTED["classification"]) if n in names]
    first = preferred[0] if preferred else next((v for v in names if fashion_default(store, v)), names[0])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(choices, value=first, label="Model (accuracy on its test set, ONNX size)",
                                elem_id="classify-model")
            use_fashionize = gr.Checkbox(value=fashion_default(store, first), label="Fashionize photos",
                                         info=FASHIONIZE_HELP, elem_id="classify-fashionize")
            with gr.Tab("Upload"):
                image = safe_image(type="pil", image_mode=None, label="Image", height=300, elem_id="classify-image")
                run = gr.Button("Classify", variant="primary", elem_id="classify-run")
                products = fashion_examples()
                if products:
                    gr.Examples(products, inputs=image, label="Fashion-MNIST test images: what the models know")
                strangers = skimage_photos(STRANGERS)
                if strangers:
                    gr.Examples(strangers, inputs=image, label=STRANGERS_LABEL)
            with gr.Tab("Draw"):
                sketch = product_sketchpad("classify-sketch")
                run_sketch = gr.Button("Classify drawing", variant="primary", elem_id="classify-sketch-run")
        with gr.Column(scale=1, min_width=300):
            top5 = gr.Label(num_top_classes=5, label="Top 5", elem_id="classify-top5")
            notice = gr.Markdown(elem_id="classify-ood")
            seen = gr.Image(label="What the model sees (the exact input tensor, stretched to black..white)",
                            interactive=False, height=300, format="png", elem_id="classify-seen")
            timing = gr.Markdown(elem_id="classify-info")
    outputs = [top5, seen, timing, notice]
    # Queued on purpose: queue=False (one POST /gradio_api/run) would save 3 to 5 ms a call, but Gradio 6.31's page
    # then shows a failed call as a bare "Error" instead of its sentence (benchmarks/README.md, issue 12).
    run.click(partial(classify, store), [model, image, use_fashionize], outputs, api_name="classify")
    image.change(partial(classify_if_image, store), [model, image, use_fashionize], outputs, api_name=False)
    run_sketch.click(partial(classify_sketch, store), [model, sketch, use_fashionize], outputs,
                     api_name="classify_sketch")
    model.change(partial(fashion_default, store), model, use_fashionize, api_name=False)
