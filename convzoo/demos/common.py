"""What the model tabs share: readable errors, image reading, model choices, example files. No torch.

Every handler is wrapped by ``readable_errors``: a user's mistake (a file that is not an image, a
huge image, an empty sketch, a model missing from the store) reaches the page as a sentence in a
``gr.Error``, never as a traceback. Every upload is read by ``convzoo.bounds.read_image``, with the
service's limits (bytes, pixels, decode time), before a pixel is decoded (issue 22).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convzoo import bounds, catalogue, registry, tasks
from convzoo.errors import BadInputError, ConvzooError
from convzoo.fashionize import flatten, has_alpha
from convzoo.registry import Store, StoredModel
from convzoo.runtime import to_rgb_or_gray
from convzoo.sizes import Size

log = logging.getLogger("convzoo.demos")

ASSETS = Path(__file__).resolve().parent.parent / "assets"
FASHION_EXAMPLES = ASSETS / "fashion_examples"
STYLE_PAINTINGS = ASSETS / "styles"
MEMBRANE_EXAMPLES = ASSETS / "membranes"
CACHE = Path(tempfile.gettempdir()) / "convzoo-demo"  # example photos, thumbnails and downloads the app writes
PREVIEW_SIDE = 280  # "what the model sees" is drawn this many pixels wide


def allow_files() -> None:
    """Let Gradio serve the shipped assets and the app's own cache, wherever convzoo is installed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([str(ASSETS), str(CACHE)])


# ----------------------------------------------------------------------------------------------
# errors


UPLOAD_LIMITS = bounds.ImageLimits()  # the service's defaults: 64 MiB, 4096x4096 pixels, 100 JPEG scans
FAILED = "convzoo could not compute this; the server's log has the details"  # a bug: never for a user's input


def readable_errors(fn: Callable) -> Callable:
    """Turn the errors a user can cause into a ``gr.Error`` with a sentence; log anything unexpected.

    Every input a person can type or upload is bounded and refused with its own sentence before it gets
    here (``bounds``, ``sizes``), so the last branch is a bug: it keeps the traceback in the log and says so on
    the page without an exception's name (tests/test_app_inputs.py looks for it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ConvzooError as e:
            raise gr.Error(str(e)) from e
        except Exception as e:
            log.exception("demo handler %s failed", fn.__name__)
            raise gr.Error(FAILED) from e

    return wrapper


def read_upload(source: Any) -> Image.Image:
    """An uploaded image checked (bytes, pixels, JPEG scans) before it is decoded, then decoded upright:
    ``convzoo.bounds.read_image``, the service's reader and limits. ``source``: a path, bytes, or a Gradio
    ``FileData`` (a ``data:`` URL too, as the API may send)."""
    url = getattr(source, "url", None) or ""
    if url.startswith("data:"):
        encoded = url.partition(",")[2]
        if len(encoded) > UPLOAD_LIMITS.max_bytes * 4 // 3 + 4:  # refused before it is decoded from base64
            raise bounds.TooLarge(f"the image is more than {UPLOAD_LIMITS.max_bytes:,} bytes; send a smaller file")
        try:
            return bounds.read_image(base64.b64decode(encoded, validate=False), UPLOAD_LIMITS)
        except (binascii.Error, ValueError) as e:
            if isinstance(e, ConvzooError):
                raise
            raise bounds.BadImage("the image's data URL is not valid base64; upload the file instead") from None
    path = getattr(source, "path", source)
    if path is None:
        raise BadInputError("no image yet: upload one, draw one, or pick an example")
    return bounds.read_image(path if isinstance(path, (bytes, bytearray)) else str(path), UPLOAD_LIMITS)


SHOWN_MODES = ("L", "LA", "RGB", "RGBA")


def _as_mode(image: Image.Image, mode: str | None) -> Image.Image:
    """The mode a ``gr.Image`` asks for; with none, a mode its pixels mean as they are (not a palette's indices)."""
    if mode:
        if image.mode == mode:
            return image
        if mode in ("RGB", "L") and has_alpha(image):  # a transparent background is white, not its hidden colour
            image = flatten(image)
        return image.convert(mode)
    if image.mode in SHOWN_MODES:
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def safe_image(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` whose uploads are read by ``read_upload``: same limits as the service, refused before
    decoding, in a sentence (one toast: Gradio's own reader never runs, so nothing fails twice).

    This instance's ``preprocess`` is replaced: subclassing a Gradio component would make Gradio write a
    ``.pyi`` stub beside this module at import time.
    """
    image = gr.Image(**kwargs)

    def checked(payload):  # noqa: ANN001, ANN202 -- Gradio's own signature
        if payload is None:
            return None
        try:
            picture = _as_mode(read_upload(payload), image.image_mode)
        except ConvzooError as e:
            raise gr.Error(str(e)) from e
        if image.type == "numpy":
            return np.asarray(picture)
        if image.type == "filepath":
            return str(payload.path)
        return picture

    image.preprocess = checked
    return image


def safe_sketchpad(**kwargs: Any) -> gr.Sketchpad:
    """A ``gr.Sketchpad`` whose layers are checked by ``bounds`` (bytes, pixels) before Gradio decodes them:
    the page sends a 280x280 canvas, the API could send anything."""
    pad = gr.Sketchpad(**kwargs)
    preprocess = pad.preprocess

    def checked(payload):  # noqa: ANN001, ANN202 -- Gradio's own signature
        if payload is not None:
            files = [payload.background, payload.composite, *(payload.layers or [])]
            for file in (f for f in files if f is not None and getattr(f, "path", None)):
                try:
                    bounds.open_image(Path(file.path).read_bytes(), UPLOAD_LIMITS, "the drawing").close()
                except ConvzooError as e:
                    raise gr.Error(str(e)) from e
                except OSError:
                    raise gr.Error("the drawing could not be read; draw it again") from None
        return preprocess(payload)

    pad.preprocess = checked
    return pad


def size_box(size: Size, value: int, label: str, **kwargs: Any) -> gr.Number:
    """A whole-number box that shows its range (``minimum``, ``maximum``, the info text ``0 to 6``).

    Gradio's own check of a Number (``raise_if_out_of_bounds``, then ``round``) would turn ``nan``, text from
    the API or ``inf`` into an "Error" without a sentence, before the view's handler sees the value; this box
    hands the value on as typed, and the handler refuses it with its sentence (``Size.parse``).
    """
    info = kwargs.pop("info", size.info)
    return as_sent(gr.Number(value, label=label, minimum=size.low, maximum=size.high, precision=0, info=info,
                             **kwargs))


def as_sent(component: gr.components.Component) -> gr.components.Component:
    """A Number or Slider whose value reaches its handler as sent, for the handler to bound with a sentence
    (``Size.parse``, ``bounds.parse_number``): Gradio's own check compares text with numbers, or rounds ``nan``,
    and fails without one. Its range is still on the page (``minimum``, ``maximum``)."""
    component.preprocess = _as_typed  # an instance attribute, as in safe_image
    return component


def _as_typed(payload: Any) -> Any:
    """A whole float as an int (``3.0`` -> ``3``, as Gradio's precision 0 does); anything else unchanged."""
    if isinstance(payload, float) and payload.is_integer():
        return int(payload)
    return payload


def as_image(value: Any) -> Image.Image:
    """A PIL image from what a Gradio input gives: PIL, numpy, a file path, or an ImageEditor dict."""
    if value is None:
        raise BadInputError("no image yet: upload one, draw one, or pick an example")
    if isinstance(value, dict):
        return sketch_image(value)
    if isinstance(value, np.ndarray):
        return Image.fromarray(value.astype(np.uint8) if value.dtype != np.uint8 else value)
    if isinstance(value, (str, Path)):
        return read_upload(value)
    if isinstance(value, Image.Image):
        return value
    raise BadInputError(f"expected an image, got {type(value).__name__}")


def product_sketchpad(elem_id: str) -> gr.Sketchpad:
    """A canvas to draw a garment on, as Fashion-MNIST classifiers take it after fashionize (dark on light)."""
    return safe_sketchpad(type="pil", label="Draw a product (dark on light)", canvas_size=(280, 280),
                          brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"), elem_id=elem_id,
                          elem_classes=["cz-sketch"])


# Gradio 6.31's Sketchpad opens with no tool chosen ("select the draw tool to start"), so a first stroke draws
# nothing (issue 23): once a canvas is on screen, its Brush is chosen for the person, once.
PAGE_JS = """
(() => {
  const arm = () => {
    for (const pad of document.querySelectorAll('.cz-sketch')) {
      if (pad.dataset.czBrush || !pad.offsetParent) continue;
      const brush = pad.querySelector('button[aria-label="Brush"]');
      if (brush) { brush.click(); pad.dataset.czBrush = 'on'; }
    }
  };
  new MutationObserver(arm).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                                               attributeFilter: ['class', 'style', 'hidden']});
})();
"""


def sketch_image(value: dict) -> Image.Image:
    """The composite of a Sketchpad/ImageEditor value on white; an empty canvas is refused."""
    composite = value.get("composite")
    if composite is None:
        layers = [layer for layer in value.get("layers") or [] if layer is not None]
        composite = value.get("background") or (layers[0] if layers else None)
    if composite is None:
        raise BadInputError("the sketch is empty: draw something on the canvas first")
    image = as_image(composite)
    flat = np.asarray(to_rgb_or_gray(image, "gray"), np.float32)
    if flat.size == 0 or float(flat.max() - flat.min()) < 8:
        raise BadInputError("the sketch is empty: draw something on the canvas first "
                            "(dark strokes on the light canvas)")
    return to_rgb_or_gray(image, "rgb")


# ----------------------------------------------------------------------------------------------
# models


def model_choice(stored: StoredModel) -> tuple[str, str]:
    """``(label, name)`` for a dropdown: the name with its headline metric and ONNX size."""
    headline = catalogue.headline_metric(dict(stored.metrics))
    quality = f"{'acc' if headline[0] == 'accuracy' else headline[0]} {headline[1]:.1%}" if headline else "not evaluated"
    return f"{stored.name} · {quality} · {catalogue.human_size(stored.manifest.get('size_bytes'))}", stored.name


def model_choices(store: Store, task: str) -> list[tuple[str, str]]:
    try:
        return [model_choice(m) for m in store.models(task)]
    except ConvzooError as e:  # an unreadable manifest must not take the whole app down
        log.warning("cannot list the %s models: %s", task, e)
        return []


SUGGESTED = {name: task.suggested for name, task in tasks.TASKS.items()}


def missing_model_text(task: str, store: Store) -> str:
    """What to do when the store holds no model for a task: train and export it, or point at a store."""
    name = SUGGESTED[task]
    known = ", ".join(f"`{n}`" for n in registry.names(task)[:6])
    return (f"**No {task} model in the store** ({', '.join(str(r) for r in store.roots)}).\n\n"
            f"Train and export one: `convzoo train {name}` then `convzoo export {name}` "
            f"(other {task} models: {known}); or copy a model folder (model.onnx, model.json, README.md) into "
            f"`$CONVZOO_HOME` or `~/.cache/convzoo`, then restart the demo.")


def open_model_tab(store: Store, task: str, text: str) -> list[tuple[str, str]]:
    """How every model tab starts: the files it serves, its two-sentence intro, and the store's models
    for its task as dropdown ``(label, name)`` choices; with none, the tab says how to get one and stops."""
    allow_files()
    intro(text)
    choices = model_choices(store, task)
    if not choices:
        gr.Markdown(missing_model_text(task, store))
    return choices


def dataset_of(store: Store, name: str | None) -> str:
    if not name:
        return ""
    stored = store.find(name)
    return stored.entry.dataset if stored else ""


# ----------------------------------------------------------------------------------------------
# pictures


def enlarge(pixels: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement so that each input pixel stays a visible square."""
    factor = max(1, side // max(pixels.shape[:2]))
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def tensor_picture(x: np.ndarray) -> np.ndarray:
    """A 1xCxHxW model input drawn as it is: its own min..max stretched to black..white, per tensor."""
    chw = x[0]
    low, high = float(chw.min()), float(chw.max())
    scaled = (chw - low) / (high - low) if high > low else np.zeros_like(chw)
    pixels = (scaled.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    return enlarge(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


OUTPUTS = CACHE / "outputs"
KEEP_OUTPUTS = 512  # pictures kept for Gradio to copy; the oldest go first
# zlib level 1 instead of Pillow's 6: a 512x512 photo encodes in about 22 ms instead of 86 ms on the 2-CPU
# development machine, for 10 % more bytes; the 280-px Classify preview in 0.27 ms instead of 0.46 (issue 12)
PNG_COMPRESS_LEVEL = 1


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


def served_file(picture: Image.Image | np.ndarray) -> str:
    """An output picture as a PNG named by its content, written once and renamed into place.

    Gradio re-encodes a returned array or PIL image into its cache on every call, at a path named by the
    content, so two identical calls rewrite the file while it is being sent (a response cut short). A
    returned path is instead copied into the cache only when the copy does not exist yet, atomically.
    """
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    data = png_bytes(image)
    path = OUTPUTS / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.exists():
        OUTPUTS.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=OUTPUTS, suffix=".tmp", delete=False) as f:
            f.write(data)
        os.replace(f.name, path)
        _prune(OUTPUTS, KEEP_OUTPUTS)
    return str(path)


def _prune(folder: Path, keep: int) -> None:
    files = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
    for old in files[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


def save_png(image: Image.Image, prefix: str) -> str:
    """A PNG in the app's cache folder, for a download button."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=CACHE, prefix=prefix, suffix=".png", delete=False) as f:
        f.write(png_bytes(image))
        return f.name


def download_copy(served: str, prefix: str) -> str:
    """A file from ``served_file`` under a readable name, for a download button: copied, not encoded again."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=CACHE, prefix=prefix, suffix=".png", delete=False) as f:
        with open(served, "rb") as source:
            shutil.copyfileobj(source, f)
        return f.name


SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def skimage_photos(names: Iterable[str] = SKIMAGE_PHOTOS) -> list[str]:
    """scikit-image's bundled photos as PNG files (written once), for gr.Examples."""
    try:
        import skimage.data
    except ImportError:  # scikit-image is in convzoo[demo]; without it the tabs simply have fewer examples
        return []
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = CACHE / f"skimage-{name}.png"
        if not path.exists():
            try:
                Image.fromarray(getattr(skimage.data, name)()).save(path)
            except Exception as e:  # noqa: BLE001 -- a missing bundled file only costs one example
                log.warning("scikit-image photo %s unavailable: %s", name, e)
                continue
        paths.append(str(path))
    return paths


def fashion_examples(per_class: int = 1) -> list[str]:
    """Real Fashion-MNIST test images shipped in convzoo/assets, ``per_class`` of each class."""
    seen: dict[str, int] = {}
    out = []
    for path in sorted(FASHION_EXAMPLES.glob("*.png")):
        label = path.stem.split("-", 1)[1]
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            out.append(str(path))
    return out


class Timer:
    """Milliseconds spent in a ``with`` block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000


def intro(text: str) -> gr.Markdown:
    return gr.Markdown(text, elem_classes=["convzoo-intro"])
