"""The filter playground: the lecture's convolution by hand, then beyond the grid, on a photo, and inside a
trained network. The first tab of the app (issue 3); one module per view (issue 25):

- ``by_hand``: a small image and filters as editable grids, outputs as exact fractions, any output or pooled
  value written out as the slides write it, its window lit up (``grid``: the grids and presets; ``layer``: the
  filters and settings read once from the page; the widget itself is ``demos.byhand``, shared with the next);
- ``demos.beyond``: the same on a 1-D signal, a graph and a volume of frames;
- ``image``: the same filters and settings on an uploaded or bundled photo, feature maps on a diverging scale;
- ``inside``: a stored classifier's first-layer filters and first two layers' feature maps.
"""

from __future__ import annotations

import gradio as gr

from convzoo.demos import beyond
from convzoo.demos.byhand import CellClick
from convzoo.demos.playground import by_hand, image, inside
from convzoo.demos.playground.by_hand import (DEFAULT_FILTERS, EXERCISE_IMAGE, matrix_state, matrix_view, pick_cell,
                                              resize_filters, resize_image, restore_exercise)
from convzoo.demos.playground.grid import DEFAULT_PRESETS, PRESETS, grid_value, preset, resized
from convzoo.demos.playground.image import image_view, load_example
from convzoo.demos.playground.inside import inside_view
from convzoo.demos.playground.layer import LETTERS, MAX_FILTERS, Layer
from convzoo.registry import Store

__all__ = ["CellClick", "DEFAULT_FILTERS", "DEFAULT_PRESETS", "EXERCISE_IMAGE", "LETTERS", "MAX_FILTERS", "PRESETS",
           "Layer", "grid_value", "image_view", "inside_view", "load_example", "matrix_state", "matrix_view",
           "pick_cell", "preset", "resize_filters", "resize_image", "resized", "restore_exercise", "tab"]

OVERVIEW = """
## Filter playground
One convolution five ways: **by hand** on the lecture's 4×4 exercise, on a **1-D signal**, on a **graph**, with the
sizes of a **3-D** volume, then the same filters **on an image** and the filters a network learned **inside a
trained CNN**.
"""


def tab(store: Store) -> None:
    gr.Markdown(OVERVIEW)
    with gr.Tabs():
        with gr.Tab("By hand", id="by-hand"):
            gr.Markdown(by_hand.INTRO)  # the 4x4 exercise's own words stay with it, not above the other views (issue 23)
            view = by_hand.view()
        beyond.signal_tab()
        beyond.graph_tab()
        beyond.volume_tab()
        image.view(view.layer)  # the by-hand view's filters and settings, on a photo
        inside.view(store)
    by_hand.wire(view)
