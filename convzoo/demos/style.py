"""Style tab: repaint a photo with a fast neural style model (Johnson et al., 2016) from the store."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from convzoo import bounds, sizes
from convzoo.demos.common import (
    CACHE,
    STYLE_PAINTINGS,
    Timer,
    as_image,
    as_sent,
    download_copy,
    open_model_tab,
    readable_errors,
    safe_image,
    served_file,
    skimage_photos,
)
from convzoo.registry import Store
from convzoo.runtime import load_model
from convzoo.zoo import STYLES

INTRO = ("**Style** repaints a photo in the manner of a painting with one pass of a feed-forward network trained "
         "for that painting (Johnson et al., 2016), not the slow optimisation of Gatys et al. "
         "Pick a painting, then use the strength slider to blend the stylised result with the original photo.")
THUMB_SIDE = 192
BUSY = ("One picture is stylised at a time, to keep each one quick on this machine's CPU; while others wait, the "
        "picture shows your place in the queue and the time left.")


def painting(name: str) -> tuple[Path, str] | None:
    """The painting a ``style-<key>`` model was trained on, with its caption, if it ships with convzoo."""
    key = name.removeprefix("style-")
    if key not in STYLES:
        return None
    file, title, artist, year = STYLES[key]
    path = STYLE_PAINTINGS / file
    return (path, f"{title} ({artist}, {year})") if path.is_file() else None


def thumbnail(path: Path) -> str:
    """A small copy of a painting (they can be megapixels), written once to the app's cache."""
    out = CACHE / f"thumb-{path.stem}.jpg"
    if not out.exists() or out.stat().st_mtime < path.stat().st_mtime:
        CACHE.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            im.save(out, quality=88)
    return str(out)


def gallery_items(names: list[str], in_store: list[str]) -> list[tuple[str, str]]:
    items = []
    for name in names:
        found = painting(name)
        if found:
            missing = "" if name in in_store else " (not trained yet)"
            items.append((thumbnail(found[0]), f"{found[1]}{missing}"))
    return items


@readable_errors
def stylize(store: Store, name: str, image: Any, strength: float = 1.0,
            max_side: int = 512) -> tuple[str, str, str]:
    """The stylised image blended with the original by ``strength``, a line with the time, and a PNG path."""
    if not name:
        raise gr.Error("choose a style first")
    max_side = sizes.STYLE_SIDE.parse(max_side)
    strength = bounds.parse_number(strength, "strength", *sizes.FRACTION)
    photo = as_image(image).convert("RGB")
    model = load_model(name, store)
    with Timer() as t:
        styled = model.stylize(photo, max_side=max_side)
    original = photo.resize(styled.size, Image.Resampling.LANCZOS) if photo.size != styled.size else photo
    out = Image.blend(original, styled, strength) if strength < 1.0 else styled
    info = (f"{name}: {styled.width}x{styled.height} px in {t.ms:.0f} ms on {model.session.get_providers()[0]}"
            f" (strength {strength:.0%}).")
    shown = served_file(out)
    return shown, info, download_copy(shown, f"{name}-")  # one PNG encoding for both: 22 ms at 512 px (issue 12)


def pick_from_gallery(store: Store, names: list[str], index: int | None) -> str:
    """Choose the clicked painting's model; a painting whose model is not trained yet says how to get it."""
    if index is None or index >= len(names):
        return gr.skip()
    name = names[index]
    if store.find(name) is None:
        gr.Warning(f"{name} is not in the store: train and export it with `convzoo train {name}` then "
                   f"`convzoo export {name}`", duration=10)
        return gr.skip()
    return name


def restyle_with(store: Store, name: str, image: Any, strength: float, max_side: int) -> tuple[Any, ...]:
    """After a painting is clicked: stylise the photo if there is one; without one, leave the page as it is."""
    return (gr.skip(),) * 3 if image is None else stylize(store, name, image, strength, max_side)


PAGE_CSS = """
#style-gallery .caption-label { white-space: normal; overflow: visible; text-overflow: clip; line-height: 1.2; }
"""


def tab(store: Store) -> None:
    names = [name for _, name in open_model_tab(store, "style", INTRO)]
    if not names:
        return
    shown = [f"style-{key}" for key in STYLES if painting(f"style-{key}")]  # every shipped painting, trained or not
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            content = safe_image(type="pil", label="Content photo", height=300, elem_id="style-content")
            photos = skimage_photos()
            if photos:
                gr.Examples(photos, inputs=content, label="Photos bundled with scikit-image")
            if shown:
                gallery = gr.Gallery(gallery_items(shown, names), label="Styles (click a painting to run it)",
                                     columns=3, height="auto",
                                     allow_preview=False, elem_id="style-gallery")
            model = gr.Dropdown(names, value=next((n for n in shown if n in names), names[0]), label="Style model",
                                elem_id="style-model")
            strength = as_sent(gr.Slider(*sizes.FRACTION, value=1.0, step=0.05,
                                         label="Strength (0: the photo, 1: fully stylised)"))
            max_side = as_sent(gr.Slider(sizes.STYLE_SIDE.low, sizes.STYLE_SIDE.high, value=512, step=32,
                                         label="Output size cap (longer side, pixels)"))
            run = gr.Button("Stylise", variant="primary", elem_id="style-run")
            gr.Markdown(BUSY, elem_id="style-busy")
        with gr.Column(scale=1, min_width=300):
            result = gr.Image(label="Stylised", interactive=False, format="png", elem_id="style-result")
            info = gr.Markdown(elem_id="style-info")
            download = gr.DownloadButton("Download PNG", interactive=False, elem_id="style-download")
    # one at a time (issue 22): Gradio's queue then shows each waiting page its place and an estimate of the wait
    # the button is live once there is something to save (issue 23)
    live = {"fn": lambda shown: gr.DownloadButton(interactive=shown is not None), "inputs": result,
            "outputs": download, "api_visibility": "private", "queue": False}
    run.click(partial(stylize, store), [model, content, strength, max_side], [result, info, download],
              api_name="stylize", concurrency_limit=1, concurrency_id="style", show_progress="full").success(**live)
    if shown:
        restyle = partial(restyle_with, store)

        def on_select(evt: gr.SelectData) -> str:  # Gradio finds the event argument by its annotation, not via partial
            return pick_from_gallery(store, shown, evt.index)

        # a painting clicked with a photo in place is run at once: choosing a style is asking for it (issue 23)
        gallery.select(on_select, None, model, api_name=False).success(
            restyle, [model, content, strength, max_side], [result, info, download], api_name=False,
            concurrency_limit=1, concurrency_id="style", show_progress="full").success(**live)
