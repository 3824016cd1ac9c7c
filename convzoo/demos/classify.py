"""Classify tab: pick a classifier from the store, give it an image, see what it sees and what it says."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr
import numpy as np

from convzoo.demos.common import (Timer, as_image, dataset_of, fashion_examples, open_model_tab, product_sketchpad,
                                  readable_errors, safe_image, served_file, skimage_photos, tensor_picture)
from convzoo.fashionize import fashionize, is_fashion_form
from convzoo.registry import Store
from convzoo.runtime import load_model, softmax, top_k

INTRO = ("**Classify** runs a trained classifier from the model store on your image with ONNX Runtime and shows "
         "its five most probable classes. The picture under the prediction is exactly the tensor the network "
         "receives, after the preprocessing written in the model file itself, so you can see why a photo can fool a 28x28 model.")
FASHIONIZE_HELP = ("Fashion-MNIST models only saw 28x28 grey products, bright on black and filling the frame. "
                   "This step converts your photo the way the data set's authors converted theirs (trim the "
                   "background, fit the longer side, centre on a square, invert to a dark background, grey).")


def fashion_default(store: Store, name: str | None) -> bool:
    return dataset_of(store, name) == "fashion-mnist"


@readable_errors
def classify(store: Store, name: str, image: Any, use_fashionize: bool = True) -> tuple[dict, str, str]:
    """Top-5 probabilities, the picture of the preprocessed tensor, and a line with the timing."""
    if not name:
        raise gr.Error("choose a model first")
    picture = as_image(image)
    model = load_model(name, store)
    steps = []
    with Timer() as prep:
        if use_fashionize and fashion_default(store, name):
            steps.append("already in Fashion-MNIST form" if is_fashion_form(picture) else "fashionized")
            picture = fashionize(picture)
        x = model.preprocess(picture)
    with Timer() as infer:
        logits = model.run(x)
    top5 = {p.label: p.probability for p in top_k(softmax(logits)[0], model.labels, 5)}
    pre = model.preprocess_spec
    done = ", ".join([*steps, "resized", "normalized"])
    info = (f"Inference {infer.ms:.1f} ms, preprocessing {prep.ms:.1f} ms ({done}). "
            f"Tensor {tuple(x.shape)} float32, values {x.min():.2f}..{x.max():.2f}: "
            f"x = (pixel × {pre.scale:.6g} − mean {list(pre.mean)}) / std {list(pre.std)}.")
    return top5, served_file(tensor_picture(x)), info


def classify_if_image(store: Store, name: str, image: Any, use_fashionize: bool = True):
    """On upload or example click: classify at once; a cleared image leaves the outputs as they are."""
    return (gr.skip(),) * 3 if image is None else classify(store, name, image, use_fashionize)


def classify_sketch(store: Store, name: str, sketch: Any, use_fashionize: bool = True) -> tuple[dict, np.ndarray, str]:
    return classify(store, name, sketch, use_fashionize)


def tab(store: Store) -> None:
    choices = open_model_tab(store, "classification", INTRO)
    if not choices:
        return
    first = next((v for _, v in choices if fashion_default(store, v)), choices[0][1])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(choices, value=first, label="Model (accuracy on its test set, ONNX size)",
                                elem_id="classify-model")
            use_fashionize = gr.Checkbox(value=fashion_default(store, first), label="Fashionize photos",
                                         info=FASHIONIZE_HELP, elem_id="classify-fashionize")
            with gr.Tab("Upload"):
                image = safe_image(type="pil", label="Image", height=300, elem_id="classify-image")
                run = gr.Button("Classify", variant="primary", elem_id="classify-run")
                examples = fashion_examples() + skimage_photos(("chelsea", "coffee", "rocket"))
                if examples:
                    gr.Examples(examples, inputs=image, label="Examples: Fashion-MNIST test images and photos")
            with gr.Tab("Draw"):
                sketch = product_sketchpad("classify-sketch")
                run_sketch = gr.Button("Classify drawing", variant="primary", elem_id="classify-sketch-run")
        with gr.Column(scale=1, min_width=300):
            top5 = gr.Label(num_top_classes=5, label="Top 5", elem_id="classify-top5")
            seen = gr.Image(label="What the model sees (the exact input tensor, stretched to black..white)",
                            interactive=False, height=300, format="png", elem_id="classify-seen")
            timing = gr.Markdown(elem_id="classify-info")
    outputs = [top5, seen, timing]
    # Queued on purpose: queue=False (one POST /gradio_api/run) would save 3 to 5 ms a call, but Gradio 6.31's page
    # then shows a failed call as a bare "Error" instead of its sentence (benchmarks/README.md, issue 12).
    run.click(partial(classify, store), [model, image, use_fashionize], outputs, api_name="classify")
    image.change(partial(classify_if_image, store), [model, image, use_fashionize], outputs, api_name=False)
    run_sketch.click(partial(classify_sketch, store), [model, sketch, use_fashionize], outputs,
                     api_name="classify_sketch")
    model.change(partial(fashion_default, store), model, use_fashionize, api_name=False)
