"""Invariance lab: shift, rotate and scale an example and watch a classifier's answer hold or break."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import bounds, sizes
from convzoo.demos import augmentation
from convzoo.demos.common import (
    as_sent,
    dataset_of,
    enlarge,
    fashion_examples,
    open_model_tab,
    readable_errors,
    skimage_photos,
)
from convzoo.fashionize import fashionize
from convzoo.registry import Store
from convzoo.runtime import load_model, resize_for, softmax, to_rgb_or_gray

INTRO = ("**Invariance lab** moves, turns and scales one image and asks a classifier about each version. "
         "The lecture's claim to test: weight sharing in convolutions and pooling make a CNN robust to "
         "translation, but nothing in the architecture makes it invariant to rotation.")
CLAIM = ("What to look for: the probability should stay high for small shifts (the same filters slide over the "
         "whole image and pooling forgets small offsets; it only falls once the object leaves the frame), and "
         "fall as the angle grows, since the filters were only ever trained on upright objects. Scale is in between: "
         "pooling forgives a little, but filters tuned to strokes of one width miss the same object much "
         "smaller or larger.")
SHIFTS = np.arange(-50, 50.1, 2.5)  # percent of the image side
ANGLES = np.arange(-180, 180.1, 10)  # degrees
SCALES = np.round(np.arange(sizes.SCALE[0], sizes.SCALE[1] + 0.01, 0.1), 2)  # the scale slider's whole range


def example_table() -> dict[str, str]:
    files = fashion_examples() + skimage_photos(("chelsea", "coffee", "rocket"))
    return {Path(f).stem: f for f in files}


def base_image(store: Store, name: str, path: str) -> Image.Image:
    """The example at the model's input size, fashionized for a Fashion-MNIST model (as the Classify tab does)."""
    model = load_model(name, store)
    with Image.open(path) as im:
        image = im.copy()
    if dataset_of(store, name) == "fashion-mnist":
        return fashionize(image)
    return resize_for(to_rgb_or_gray(image, model.preprocess_spec.color), model.preprocess_spec)


def fill_of(image: Image.Image) -> int | tuple[int, ...]:
    """The border's median colour: what appears where the moved image no longer covers the frame."""
    a = np.asarray(image)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    median = np.median(border, axis=0)
    return int(median) if np.ndim(median) == 0 else tuple(int(v) for v in median)


def transform(image: Image.Image, shift_x: float = 0, shift_y: float = 0, angle: float = 0,
              scale: float = 1.0) -> Image.Image:
    """Shift (percent of the side), rotate (degrees, counter-clockwise) and scale about the centre."""
    w, h = image.size
    cx, cy = w / 2, h / 2
    tx, ty = shift_x / 100 * w, shift_y / 100 * h
    theta = math.radians(angle)
    cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
    # PIL maps each output pixel back to the input: the inverse of scale-rotate-shift about the centre
    a, b, d, e = cos, -sin, sin, cos
    x0, y0 = -cx - tx, -cy - ty
    coeffs = (a, b, a * x0 + b * y0 + cx, d, e, d * x0 + e * y0 + cy)
    return image.transform(image.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR,
                           fillcolor=fill_of(image))


@readable_errors
def predict(store: Store, name: str, example: str, shift_x: float = 0, shift_y: float = 0, angle: float = 0,
            scale: float = 1.0) -> tuple[np.ndarray, dict]:
    """The moved image, drawn large, and the classifier's top 5 for it."""
    paths = example_table()
    if example not in paths:
        raise gr.Error(f"no example named {sizes.shown(example)}; choose one from the list")
    shift_x, shift_y = (bounds.parse_number(v, f"shift {way}", *sizes.SHIFT) for v, way in ((shift_x, "right"),
                                                                                         (shift_y, "down")))
    angle = bounds.parse_number(angle, "angle", *sizes.ANGLE)
    scale = bounds.parse_number(scale, "scale", *sizes.SCALE)
    moved = transform(base_image(store, name, paths[example]), shift_x, shift_y, angle, scale)
    return enlarge(np.asarray(moved)), load_model(name, store).top_k(moved, k=5)


def probabilities(store: Store, name: str, images: list[Image.Image]) -> np.ndarray:
    model = load_model(name, store)
    batch = np.concatenate([model.preprocess(im) for im in images])
    return softmax(model.run(batch))


SWEEPS = (  # (what moves, keyword of ``transform``, values, axis label, colour); every slider of the tab is swept
    ("horizontal shift", "shift_x", SHIFTS, "shift right (% of the image side)", "tab:blue"),
    ("vertical shift", "shift_y", SHIFTS, "shift down (% of the image side)", "tab:green"),
    ("rotation", "angle", ANGLES, "rotation (degrees)", "tab:red"),
    ("scale", "scale", SCALES, "scale (1 = as drawn)", "tab:purple"),
)


@readable_errors
def sweep(store: Store, name: str, example: str):  # noqa: ANN201 -- a matplotlib Figure
    """Top-1 probability of the unmoved image's class against each slider: shift right, shift down, angle, scale."""
    from matplotlib.figure import Figure  # noqa: PLC0415 -- only the sweep draws with matplotlib

    paths = example_table()
    if example not in paths:
        raise gr.Error(f"no example named {sizes.shown(example)}; choose one from the list")
    base = base_image(store, name, paths[example])
    model = load_model(name, store)
    cls = int(np.argmax(probabilities(store, name, [base])[0]))
    label = model.labels[cls] if cls < len(model.labels) else str(cls)
    curves = {what: probabilities(store, name, [transform(base, **{key: v}) for v in values])[:, cls]
              for what, key, values, _, _ in SWEEPS}
    fig = Figure(figsize=(9, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharey=True).ravel()
    for ax, (what, _, values, xlabel, colour) in zip(axes, SWEEPS):
        ax.plot(values, curves[what], marker="o", ms=3, color=colour)
        ax.set(xlabel=xlabel, ylabel=f"P({label})", ylim=(0, 1.02), title=what)
        ax.grid(alpha=0.3)
    axes[2].set_xticks(range(-180, 181, 90))
    near = np.abs(SHIFTS) <= 10
    small = min(curves["horizontal shift"][near].min(), curves["vertical shift"][near].min())
    turned = curves["rotation"][np.abs(ANGLES) >= 90].min()
    shrunk, grown = curves["scale"][SCALES <= 0.6].min(), curves["scale"][SCALES >= 1.6].min()
    summary = (f"{name} on {example}: P({label}) is {curves['rotation'][ANGLES == 0][0]:.2f} untouched, at least "
               f"{small:.2f} for shifts up to ±10% either way, as low as {shrunk:.2f} at 0.6x the size or smaller and "
               f"{grown:.2f} at 1.6x or larger, and as "
               f"low as {turned:.2f} once the image is turned by 90° or more. {CLAIM}")
    return fig, summary


def tab(store: Store) -> None:
    choices = open_model_tab(store, "classification", INTRO)
    examples = list(example_table())
    if not choices:
        return
    first = next((v for _, v in choices if dataset_of(store, v) == "fashion-mnist"), choices[0][1])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(choices, value=first, label="Classifier", elem_id="invariance-model")
            example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Example",
                                  elem_id="invariance-example")
            shift_x = as_sent(gr.Slider(*sizes.SHIFT, value=0, step=1, label="Shift right (% of the side)"))
            shift_y = as_sent(gr.Slider(*sizes.SHIFT, value=0, step=1, label="Shift down (% of the side)"))
            angle = as_sent(gr.Slider(*sizes.ANGLE, value=0, step=5, label="Rotate (degrees, counter-clockwise)"))
            scale = as_sent(gr.Slider(*sizes.SCALE, value=1.0, step=0.05, label="Scale"))
            run_predict = gr.Button("Predict", elem_id="invariance-predict")
        with gr.Column(scale=1, min_width=300):
            moved = gr.Image(label="What the classifier gets", interactive=False, format="png", height=280,
                             elem_id="invariance-image")
            top5 = gr.Label(num_top_classes=5, label="Prediction", elem_id="invariance-top5")
    run_sweep = gr.Button("Sweep shift, angle and scale", variant="primary", elem_id="invariance-run")
    plot = gr.Plot(label="Top-1 probability against each slider", elem_id="invariance-plot")
    summary = gr.Markdown(CLAIM, elem_id="invariance-summary")
    inputs = [model, example, shift_x, shift_y, angle, scale]
    for control in (model, example):
        control.change(partial(predict, store), inputs, [moved, top5], api_name=False)
    for slider in (shift_x, shift_y, angle, scale):
        slider.release(partial(predict, store), inputs, [moved, top5], api_name=False)
    run_predict.click(partial(predict, store), inputs, [moved, top5], api_name="invariance")
    run_sweep.click(partial(sweep, store), [model, example], [plot, summary], api_name="invariance_sweep")
    augmentation.section(store)
