"""The app frame: a header and one tab per demo module, in the order a lecture meets them."""

from __future__ import annotations

import importlib

import gradio as gr

from convzoo import __version__
from convzoo.demos import common
from convzoo.registry import Store

# (tab title, module in convzoo.demos); each module exposes ``tab(store) -> None``
TABS = (
    ("Filter playground", "playground"),
    ("Classify", "classify"),
    ("Style", "style"),
    ("Segment", "segment"),
    ("Invariance lab", "invariance"),
    ("Convolution thinking", "thinking"),
    ("Models", "models_tab"),
)


def _tab_module(module: str):
    try:
        return importlib.import_module(f"convzoo.demos.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"convzoo.demos.{module}":  # a tab not built yet; anything else is a real error
            return None
        raise


def page_head(modules: list) -> gr.HTML:
    """Every tab's ``PAGE_CSS`` and ``PAGE_JS`` in the page's head. Gradio 6 takes page CSS and JS only in
    ``launch()``, which the Space, ``convzoo demo`` and the tests each call their own way; the app carries them."""
    css = "\n".join(getattr(m, "PAGE_CSS", "") for m in modules)
    js = "\n".join(getattr(m, "PAGE_JS", "") for m in modules)
    return gr.HTML("", head=f"<style>{css}</style><script>{js}</script>", elem_id="convzoo-head", padding=False,
                   container=False)


def build_app(store: Store | None = None) -> gr.Blocks:
    store = store or Store()
    modules = [(title, m) for title, m in ((t, _tab_module(name)) for t, name in TABS) if m is not None]
    with gr.Blocks(title="convzoo") as app:
        page_head([common, *(m for _, m in modules)])
        gr.Markdown(f"# convzoo {__version__}\nThe classic convolutional networks, from a convolution done by hand "
                    "to trained models running on ONNX Runtime.")
        for title, tab_module in modules:
            with gr.Tab(title):
                tab_module.tab(store)
    return app
