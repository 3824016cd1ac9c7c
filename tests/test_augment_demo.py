"""The Invariance lab's augmentation section: its handler directly, and its endpoint through gradio_client
against the whole app on the tiny store."""

from __future__ import annotations

import re

import gradio as gr
import numpy as np
import pytest
from gradio.layouts import Form
from PIL import Image

from convzoo import augment_preview as preview
from convzoo.demos import augmentation
from convzoo.demos.common import enlarge

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

EXAMPLE = "0000-ankle-boot"


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


def pixels_of(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_views_are_the_previews_views_drawn_large(tiny_store):
    gallery, text = augmentation.augment_views(tiny_store, "tiny-fashion", EXAMPLE, seed=5)
    assert len(gallery) == 1 + augmentation.VIEWS
    example = np.asarray(Image.open(augmentation.example_table()[EXAMPLE]))
    np.testing.assert_array_equal(pixels_of(gallery[0][0]), enlarge(example, augmentation.SIDE))
    plan = augmentation.plan_of(tiny_store, "tiny-fashion")
    pictures, d = preview.views(plan, example, augmentation.VIEWS, np.random.default_rng(5))
    for i, (path, caption) in enumerate(gallery[1:]):
        np.testing.assert_array_equal(pixels_of(path), enlarge(pictures[i, :, :, 0], augmentation.SIDE))
        assert caption == augmentation.caption(plan, d, i)
        assert re.fullmatch(r"x[+-]\d y[+-]\d(, flipped)?", caption)
    assert "crop with 2 px zero padding, horizontal flip p=0.5" in text


def test_a_model_outside_the_registry_brings_its_recipe_in_its_manifest(tiny_store):
    plan = augmentation.plan_of(tiny_store, "tiny-cifar")  # resnet18-cifar10's entry under another name
    assert plan == preview.plan_of("resnet18-cifar10")


@pytest.mark.parametrize(("name", "example", "message"), [
    ("tiny-fashion", "no-such-example", "no example named 'no-such-example'; choose one from the list"),
    ("", EXAMPLE, "choose a classifier first"),
    ("lenet5-fashion", EXAMPLE, "not in the store"),  # the page only offers stored models; this one left the store
    ("tiny-membranes", EXAMPLE, "tiny-membranes is a segmentation model"),
])
def test_bad_input_gets_a_sentence(tiny_store, name, example, message):
    with pytest.raises(gr.Error, match=message):
        augmentation.augment_views(tiny_store, name, example)


def test_every_element_is_named_augment(tiny_store):
    with gr.Blocks() as demo:
        augmentation.section(tiny_store)
    # Form is the wrapper Gradio itself puts around form fields, not an element of the section
    ids = [block.elem_id for block in demo.blocks.values() if block is not demo and not isinstance(block, Form)]
    assert ids and all(i and i.startswith("augment-") for i in ids), ids


def test_augment_views_endpoint(client):
    gallery, text = client.predict("tiny-fashion", EXAMPLE, api_name="/augment_views")
    assert len(gallery) == 1 + augmentation.VIEWS
    assert gallery[0]["caption"] == "the example, unaugmented"
    first = [pixels_of(item["image"]) for item in gallery]
    assert all(p.shape == (28 * 6, 28 * 6) for p in first)  # 28 px drawn 6 times larger, grey
    assert "crop with 2 px zero padding, horizontal flip p=0.5" in text
    again, _ = client.predict("tiny-fashion", EXAMPLE, api_name="/augment_views")
    second = [pixels_of(item["image"]) for item in again]
    np.testing.assert_array_equal(first[0], second[0])  # the example itself does not change
    assert any(not np.array_equal(a, b) for a, b in zip(first[1:], second[1:])), "a second press drew the same views"


def test_augment_views_of_an_rgb_model(client):
    gallery, text = client.predict("tiny-cifar", "skimage-chelsea", api_name="/augment_views")
    assert pixels_of(gallery[1]["image"]).shape == (32 * 5, 32 * 5, 3)
    assert "crop with 4 px zero padding" in text


def test_augment_views_bad_example_through_the_client(client):
    with pytest.raises(Exception, match="not in the list of choices"):  # Gradio's own dropdown check speaks first
        client.predict("tiny-fashion", "nothing-like-it", api_name="/augment_views")
