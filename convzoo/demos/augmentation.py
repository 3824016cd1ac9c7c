"""Data augmentation, seen: a classifier's training recipe applied to an example, eight views at a time.

A section of the Invariance lab: random crops and flips are how a CNN is taught the shifts and mirror images
that tab measures. The views come from ``convzoo.augment_preview``, the numpy twin of the training code.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import augment_preview as preview
from convzoo import registry
from convzoo import sizes
from convzoo.demos.common import (SUGGESTED, dataset_of, enlarge, fashion_examples, model_choices, read_upload,
                                  readable_errors, served_file, skimage_photos)
from convzoo.fashionize import fashionize
from convzoo.registry import Store
from convzoo.runtime import resize_for, to_rgb_or_gray

VIEWS = 8
SIDE = 168  # each view drawn this many pixels wide, every input pixel a visible square
INTRO = ("### Data augmentation, seen\n"
         "Weight sharing gives a CNN no invariance to mirror images and only some to shifts; training adds the rest "
         "by showing it moved, mirrored and partly erased copies of each image. Pick a classifier: its recipe's "
         "augmentations, computed as its training computes them, make new views of the example at every press "
         "(captions: the content's shift in pixels, x right and y down).")
PROMPT = "Press **Draw augmented views** to see what this classifier's training made of the example."


def example_table() -> dict[str, str]:
    files = fashion_examples() + skimage_photos(("chelsea", "coffee", "rocket"))
    return {Path(f).stem: f for f in files}


def plan_of(store: Store, name: str) -> preview.Plan:
    """The model's recipe from the registry; a model the registry does not know brings its entry in its manifest."""
    entry = store.get(name).entry
    if entry.task != "classification":
        raise gr.Error(f"{name} is a {entry.task} model; the augmentation preview shows a classifier's recipe")
    if name in registry.names():
        return preview.plan_of(name)
    return preview.Plan.of(entry.recipe.augment, entry.preprocess, entry.recipe.options)


def training_pixels(store: Store, name: str, plan: preview.Plan, path: str) -> np.ndarray:
    """The example as a training image of this model: 28x28 Fashion-MNIST form, or the model's size and colour."""
    image = read_upload(path)
    if dataset_of(store, name) == "fashion-mnist":
        return np.asarray(fashionize(image))
    return np.asarray(resize_for(to_rgb_or_gray(image, plan.preprocess.color), plan.preprocess))


def caption(plan: preview.Plan, d: preview.Draw, i: int) -> str:
    """What view ``i`` drew: the shift of its content (x right, y down), a flip, an erased rectangle."""
    parts = []
    if "crop" in plan.names and plan.padding > 0:
        parts.append(f"x{plan.padding - d.dx[i]:+d} y{plan.padding - d.dy[i]:+d}")
    if "flip" in plan.names and d.flip[i]:
        parts.append("flipped")
    if "erase" in plan.names and d.erase[i]:
        parts.append(f"erased {d.height[i]}x{d.width[i]} px")
    return ", ".join(parts) or "unchanged"


def recipe_text(name: str, plan: preview.Plan) -> str:
    words = preview.describe(plan)
    text = f"**{name}** trains with: {words}." if plan.names else f"**{name}**'s recipe uses no augmentation."
    if "erase" in plan.names:
        text += " Erasing fills its rectangle with noise in normalised units; it is drawn here mapped back to pixels."
    return text + " Each view draws its own random numbers, as every image of a training batch does."


def square(pixels: np.ndarray) -> str:
    picture = enlarge(pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels, SIDE)
    return served_file(Image.fromarray(picture))


@readable_errors
def describe(store: Store, name: str) -> str:
    if not name:
        raise gr.Error("choose a classifier first")
    return recipe_text(name, plan_of(store, name))


@readable_errors
def augment_views(store: Store, name: str, example: str, seed: int | None = None) -> tuple[list, str]:
    """The example as training sees it, then ``VIEWS`` augmented views with their captions, and the recipe in words."""
    if not name:
        raise gr.Error("choose a classifier first")
    paths = example_table()
    if example not in paths:
        raise gr.Error(f"no example named {sizes.shown(example)}; choose one from the list")
    plan = plan_of(store, name)
    pixels = training_pixels(store, name, plan, paths[example])
    pictures, d = preview.views(plan, pixels, VIEWS, np.random.default_rng(seed))  # no seed: new views each press
    gallery = [(square(pixels), "the example, unaugmented")]
    gallery += [(square(p), caption(plan, d, i)) for i, p in enumerate(pictures)]
    return gallery, recipe_text(name, plan)


def section(store: Store) -> None:
    """The augmentation preview, under the Invariance lab's own controls."""
    choices = model_choices(store, "classification")
    if not choices:
        return
    names = [value for _, value in choices]
    fashion = [n for n in names if dataset_of(store, n) == "fashion-mnist"]
    first = SUGGESTED["classification"] if SUGGESTED["classification"] in names else (fashion or names)[0]
    examples = list(example_table())
    gr.Markdown(INTRO, elem_id="augment-intro")
    with gr.Row(equal_height=False, elem_id="augment-row"):
        with gr.Column(scale=1, min_width=300, elem_id="augment-controls"):
            model = gr.Dropdown(choices, value=first, label="Classifier (its training recipe)", elem_id="augment-model")
            example = gr.Dropdown(examples, value=examples[0] if examples else None, label="Example",
                                  elem_id="augment-example")
            run = gr.Button("Draw augmented views", variant="primary", elem_id="augment-run")
            recipe = gr.Markdown(PROMPT, elem_id="augment-recipe")
        with gr.Column(scale=2, min_width=300, elem_id="augment-column"):
            gallery = gr.Gallery(label=f"The example and {VIEWS} augmented views", columns=3, height="auto",
                                 object_fit="contain", allow_preview=True, interactive=False, format="png",
                                 elem_id="augment-gallery")
    model.change(partial(describe, store), [model], recipe, api_name=False)
    run.click(partial(augment_views, store), [model, example], [gallery, recipe], api_name="augment_views")
