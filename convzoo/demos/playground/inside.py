"""The inside view: a stored classifier's first-layer filters and its first two layers' feature maps, read
from its ONNX file with onnxruntime (``convzoo.demos.inside``)."""

from __future__ import annotations

from functools import partial

import gradio as gr
from PIL import Image

from convzoo.demos import byhand, examples, plots
from convzoo.demos.common import readable_errors, safe_image
from convzoo.demos.playground.image import Recent, load_example, photo_pixels
from convzoo.errors import ConvzooError
from convzoo.registry import Store
from convzoo.runtime import load_model

DRAWN_LINES = examples.DRAWN[0]
_INSIDE_VIEWS, _FILTER_GRIDS = Recent(), Recent()

def _classifiers(store: Store) -> list[str]:
    """The stored classifiers with a convolution to look inside (not an MLP), the smallest, quickest to read,
    first."""
    from convzoo.demos.inside import has_convolution  # noqa: PLC0415 -- onnx only where the tab is built

    names = [m.name for m in store.models("classification") if has_convolution(m.onnx_path)]
    return sorted(names, key=lambda n: (not n.startswith("lenet"), n))


def no_classifier_text(store: Store) -> str:
    roots = ", ".join(f"`{root}`" for root in store.roots)
    return ("**No classifier in the model store** (" + roots + "). Train and export one, then restart the demo: "
            "`convzoo train lenet5-fashion` then `convzoo export lenet5-fashion` (a few minutes on a CPU).")


@readable_errors
def inside_view(store: Store, name: str | None, pixels) -> tuple[Image.Image | None, Image.Image | None,
                                                                  Image.Image | None, str]:
    """First-layer filters, first- and second-layer feature maps, and a few words on what they are."""
    from convzoo.demos.inside import MAX_MAPS, probe_stored  # onnx is only needed once someone looks inside

    if not name:
        return None, None, None, no_classifier_text(store)
    if pixels is None:
        return None, None, None, "Upload an image or choose an example."
    try:
        pixels = photo_pixels(pixels)
        key = Recent.key(store.roots, name, store.get(name).sha256, pixels)  # a re-export is a new model
        if (known := _INSIDE_VIEWS.get(key)) is not None:
            return known
        probe = probe_stored(store, name)
        pixels = examples.shrink(pixels, 256) if probe.preprocess.size is None else pixels
        from convzoo.runtime import preprocess_image  # noqa: PLC0415

        batch = preprocess_image(pixels, probe.preprocess)
        maps = probe.run(batch)
        layers = probe.layers
        filters_key = Recent.key(store.roots, name, store.get(name).sha256)
        filters = _FILTER_GRIDS.get(filters_key)
        if filters is None:  # the same for every input: drawn once per model
            shown = min(len(probe.weights), 64)
            filters = _FILTER_GRIDS.put(filters_key, plots.filter_grid(
                probe.weights[:shown], title=f"{name}: first-layer filters ({shown} of {len(probe.weights)}, "
                f"{probe.weights.shape[1]} channel(s) each)"))
        figures = []
        for index, (layer, layer_maps) in enumerate(zip(layers, maps)):
            n = min(MAX_MAPS, len(layer_maps))
            figures.append(plots.feature_maps(
                layer_maps[:n], title=f"layer {index + 1}: {n} of {len(layer_maps)} maps, {layer_maps.shape[1]}x"
                f"{layer_maps.shape[2]}, after {' → '.join(layer.ops)}; one colour scale for the layer",
                scale="shared"))  # one scale: the maps that respond most stand out, as they do for the next layer
        prediction = load_model(name, store).top_k(pixels, k=3)
        said = ", ".join(f"{label} {p:.0%}" for label, p in prediction.items())
        lines = [f"**{name}** sees a {batch.shape[2]}x{batch.shape[3]} {probe.preprocess.color} input "
                 f"and says: {said}."]
        lines += [f"- layer {i + 1}: {layer.description}" for i, layer in enumerate(layers)]
        if len(layers) < 2:
            lines.append("- this model has only one convolution, so there is no second layer to show.")
        return _INSIDE_VIEWS.put(key, (filters, figures[0], figures[1] if len(figures) > 1 else None, "\n".join(lines)))
    except ConvzooError as e:
        return None, None, None, byhand.message(e)


INSIDE_NOTES = """
### Inside a trained CNN
Nobody designed these filters: training found them. The first layer's filters still tend to look like the
presets, edge and line detectors at several orientations and colour blobs (cf. AlexNet's figure 3). Each feature
map is one filter's answer at every position of the input; the second layer combines the first layer's maps into
larger, more specific patterns. Read from the model's ONNX file with onnxruntime; no training framework involved.
"""


def view(store: Store) -> None:
    with gr.Tab("Inside a trained CNN", id="inside") as this:
        gr.Markdown(INSIDE_NOTES)
        classifiers = _classifiers(store)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                model = gr.Dropdown(classifiers, value=classifiers[0] if classifiers else None,
                                    label="Classifier from the model store", interactive=bool(classifiers))
                example = gr.Dropdown(examples.names(), value=DRAWN_LINES, label="Example input")
                photo = safe_image(value=load_example(DRAWN_LINES), label="Input (upload your own)", type="numpy",
                                   image_mode=None, format="png", height=220, elem_id="pg-inside-photo")
                look = gr.Button("Look inside", variant="primary")
            with gr.Column(scale=3):
                info = gr.Markdown("" if classifiers else no_classifier_text(store), elem_id="pg-inside-info")
                pictures = [gr.Image(None, label=label, type="pil", format="png", interactive=False, elem_id=elem,
                                     show_label=False)
                            for label, elem in (("First-layer filters", "pg-learned"),
                                                ("First-layer feature maps", "pg-layer1"),
                                                ("Second-layer feature maps", "pg-layer2"))]
    gr.on([photo.change, model.change, look.click, this.select], partial(inside_view, store), [model, photo],
          [*pictures, info], api_name="inside_cnn", trigger_mode="always_last")
    example.change(load_example, example, photo, api_name="load_inside_example")

