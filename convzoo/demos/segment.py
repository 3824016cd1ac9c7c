"""Segment tab: a U-Net from the store labels every pixel of an electron-microscopy section."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import bounds, sizes
from convzoo.demos.common import (
    CACHE,
    MEMBRANE_EXAMPLES,
    Timer,
    as_image,
    as_sent,
    open_model_tab,
    readable_errors,
    safe_image,
    save_png,
    served_file,
)
from convzoo.registry import Store
from convzoo.runtime import load_model

INTRO = ("**Segment** runs a U-Net (Ronneberger et al., 2015) that gives every pixel of an electron-microscopy "
         "section a class, membrane or cell interior, the task the U-Net paper was evaluated on. The mask is drawn "
         "over the section in colour; move the opacity slider to compare it with the tissue underneath.")
COLORS = np.array([(230, 40, 40), (40, 160, 255), (60, 200, 90), (250, 200, 40)], np.uint8)  # one per class
MAX_SIDE = 1024  # a fully convolutional net costs time in proportion to the pixels
# U-Net halves the picture four times: below 16 pixels a side its deepest maps are empty, and a 1x1 section got a
# 1x1 "membrane 100%" (issue 23). An EM section worth segmenting shows a few cells: 64 pixels is two or three.
MIN_SIDE = 64


def synthetic_section(seed: int = 0, size: int = 256) -> str:
    """A membrane-like picture (dark walls between Voronoi cells), for when no EM section ships."""
    path = CACHE / f"synthetic-section-{seed}.png"
    if path.exists():
        return str(path)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (40, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.sort(np.hypot(yy[..., None] - centres[:, 0], xx[..., None] - centres[:, 1]), axis=-1)
    wall = np.exp(-((d[..., 1] - d[..., 0]) / 2.5) ** 2)  # dark where two cells are nearly equally close
    pixels = 200 - 150 * wall + rng.normal(0, 12, (size, size))
    CACHE.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def examples() -> tuple[list[str], str]:
    shipped = sorted(MEMBRANE_EXAMPLES.glob("*.png"), key=lambda p: (len(p.stem), p.stem))[:6]
    if shipped:
        return [str(p) for p in shipped], "Held-out EM sections (ISBI 2012, not used for training)"
    return [synthetic_section(seed) for seed in range(2)], "Synthetic membrane pictures (no EM sections ship here)"


def overlay(image: Any, mask: np.ndarray | None, opacity: float) -> np.ndarray | None:
    """The section in grey with each class's colour laid over it at ``opacity``."""
    if image is None or mask is None:
        return None
    grey = np.asarray(as_image(image).convert("L").resize(mask.shape[::-1]), np.float32)[..., None]
    colour = COLORS[mask % len(COLORS)].astype(np.float32)
    alpha = np.full(mask.shape + (1,), bounds.parse_number(opacity, "mask opacity", *sizes.FRACTION), np.float32)
    if mask.max(initial=0) <= 1:  # two classes (membrane, cell): colour the membranes, leave the tissue visible
        alpha[mask == 1] = 0.0
    return ((1 - alpha) * grey + alpha * colour).round().astype(np.uint8)


@readable_errors
def overlay_file(image: Any, mask: np.ndarray | None, opacity: float) -> str | None:
    picture = overlay(image, mask, opacity)
    return None if picture is None else served_file(picture)


@readable_errors
def segment(store: Store, name: str, image: Any, opacity: float = 0.5) -> tuple[str, str, dict, str, np.ndarray]:
    """Overlay, mask PNG path, class fractions, a timing line, and the mask itself (kept for the slider)."""
    if not name:
        raise gr.Error("choose a model first")
    bounds.parse_number(opacity, "mask opacity", *sizes.FRACTION)
    section = as_image(image)
    if min(section.size) < MIN_SIDE:
        raise gr.Error(f"the image is {section.width}x{section.height} pixels, too small to segment: a section needs "
                       f"at least {MIN_SIDE}x{MIN_SIDE} pixels (a few cells) for the U-Net to see membranes between "
                       "them; upload a larger image")
    if max(section.size) > MAX_SIDE:  # keep the answer quick on a CPU; the mask comes back at this size
        section = section.copy()
        section.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    model = load_model(name, store)
    with Timer() as t:
        probs = model.segment(section)
    mask = probs.argmax(axis=0).astype(np.uint8)
    labels = model.labels or [f"class {i}" for i in range(probs.shape[0])]
    fractions = {label: float((mask == i).mean()) for i, label in enumerate(labels)}
    # the PNG holds class indices scaled to 0..255, as the ISBI labels do (0 = membrane, 255 = cell)
    mask_png = save_png(Image.fromarray((mask * (255 // max(1, len(labels) - 1))).astype(np.uint8)), f"{name}-mask-")
    coloured = labels[:1] if len(labels) == 2 else labels
    info = f"{name}: {mask.shape[1]}x{mask.shape[0]} px in {t.ms:.0f} ms. Coloured: " + ", ".join(
        f"{label} = rgb{tuple(int(c) for c in COLORS[i % len(COLORS)])}" for i, label in enumerate(coloured))
    return served_file(overlay(section, mask, opacity)), mask_png, fractions, info, mask


def tab(store: Store) -> None:
    names = [name for _, name in open_model_tab(store, "segmentation", INTRO)]
    if not names:
        return
    example_files, example_label = examples()
    mask_state = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(names, value=names[0], label="Model", elem_id="segment-model")
            image = safe_image(type="pil", label="EM section", height=320, elem_id="segment-image")
            gr.Examples(example_files, inputs=image, label=example_label)
            run = gr.Button("Segment", variant="primary", elem_id="segment-run")
        with gr.Column(scale=1, min_width=300):
            shown = gr.Image(label="Mask over the section", interactive=False, format="png", height=320,
                             elem_id="segment-overlay")
            opacity = as_sent(gr.Slider(*sizes.FRACTION, value=0.5, step=0.05, label="Mask opacity",
                                        elem_id="segment-opacity"))
            fractions = gr.Label(label="Fraction of pixels per class", elem_id="segment-fractions")
            info = gr.Markdown(elem_id="segment-info")
            download = gr.DownloadButton("Download mask PNG", elem_id="segment-download")
    run.click(partial(segment, store), [model, image, opacity], [shown, download, fractions, info, mask_state],
              api_name="segment")
    opacity.change(overlay_file, [image, mask_state, opacity], shown, api_name=False)
