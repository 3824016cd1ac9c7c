"""The app frame: a header and one tab per demo module, in the order a lecture meets them."""

from __future__ import annotations

import importlib

import gradio as gr

from convzoo import __version__
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


def build_app(store: Store | None = None) -> gr.Blocks:
    store = store or Store()
    with gr.Blocks(title="convzoo") as app:
        gr.Markdown(f"# convzoo {__version__}\nThe classic convolutional networks, from a convolution done by hand "
                    "to trained models running on ONNX Runtime.")
        for title, module in TABS:
            tab_module = _tab_module(module)
            if tab_module is None:
                continue
            with gr.Tab(title):
                tab_module.tab(store)
    return app
