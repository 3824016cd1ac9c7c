"""Models tab: the registry as a table, each model's card, its ONNX file, and ten lines that run it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gradio as gr

from convzoo import catalogue, registry, tasks
from convzoo.card import ten_lines
from convzoo.demos.common import intro, readable_errors
from convzoo.registry import Store, StoredModel


def _headlines() -> str:
    """What the metric column holds per task, from the task records (so the intro and the column agree)."""
    said = [f"{task.headline.label} for {name} ({task.headline.better} is better)" for name, task in tasks.TASKS.items()
            if task.headline is not None]
    return "; ".join(said)


INTRO = ("**Models** lists every model convzoo knows, from its registry, with what the store holds for each. The "
         f"metric column is the headline test metric: {_headlines()}. Click a row, or choose a stored model below, to "
         "read its model card (the sha256 is there), download its ONNX file, and copy ten lines of Python that run "
         "it with onnxruntime and the file's own metadata.")
# the table fits a laptop's width without scrolling sideways: the sha256 is in each card, the dataset in each name
SHOWN = ("name", "task", "params", "MACs", "metric", "ONNX size", "in store")
COLUMNS = list(SHOWN)
PAGE_CSS = """
#models-table td, #models-table .cell-wrap { cursor: pointer; }
#models-table .cell-selected, #models-table td:focus-within, #models-table td.focus { outline: none !important;
  box-shadow: none !important; }
#models-table tr:hover td { background: var(--table-row-focus, #eef3ff); }
"""


def rows(store: Store) -> list[list[str]]:
    """One row per registry entry and per stored model the registry does not name (a user's own export),
    the same rows as `convzoo list`; what can be run and downloaded first."""
    at = [catalogue.COLUMNS.index(c) for c in SHOWN]
    return [[cells[i] for i in at] for cells in (row.cells() for row in catalogue.rows(store))]


def _strip_front_matter(card: str) -> str:
    if card.startswith("---"):
        end = card.find("\n---", 3)
        if end != -1:
            return card[end + 4:].lstrip()
    return card


IMAGE_LINK = re.compile(r"!\[(?P<caption>[^\]]*)\]\((?P<target>[^)\s]+)\)")


def card_pictures(card: str, folder: Path) -> tuple[str, list[tuple[str, str]]]:
    """The card without its pictures, and the pictures as (file, caption) for a gallery.

    A card's pictures are files beside it (``confusion.png``), which the Hub shows but a Markdown
    component cannot reach; a link to anything outside the model's folder is dropped, not followed.
    """
    pictures: list[tuple[str, str]] = []

    def take(match: re.Match) -> str:
        path = (folder / match["target"]).resolve()
        if path.is_relative_to(folder.resolve()) and path.is_file():
            pictures.append((str(path), match["caption"]))
            return f"*({match['caption']}: shown beside the card)*"
        return ""

    return IMAGE_LINK.sub(take, card), pictures


def _card_of(stored: StoredModel) -> str:
    try:
        return _strip_front_matter(stored.card_path.read_text())
    except OSError:
        from convzoo.card import render_card  # noqa: PLC0415 -- only when a folder lost its README

        return _strip_front_matter(render_card(stored))


@readable_errors
def model_card(store: Store, name: str) -> tuple[str, Any, str, list[tuple[str, str]]]:
    """The card (markdown), the ONNX file for the download button (None if absent), the ten lines, and the
    card's pictures (the confusion matrix) for the gallery."""
    if not name:
        raise gr.Error("choose a model first")
    stored = store.find(name)
    if stored is None:
        entry = registry.get(name)
        how = (f"**{name} is not in the store.** {entry.summary}\n\nTrain and export it: `convzoo train {name}` then "
               f"`convzoo export {name}`; or copy its folder (model.onnx, model.json, README.md) into `$CONVZOO_HOME` "
               f"or `~/.cache/convzoo`.")
        return how, None, f"# {name} is not in the store yet: train and export it first\n", []
    stored.verify()  # a corrupt file is refused here, with the reason, not offered for download
    card, pictures = card_pictures(_card_of(stored), stored.folder)
    return card, str(stored.onnx_path), ten_lines(stored), pictures


def pick_row(table_rows: list[list[str]], index: int | list[int] | None) -> str:
    row = index[0] if isinstance(index, (list, tuple)) else index
    return table_rows[row][0] if row is not None and row < len(table_rows) else gr.skip()


def tab(store: Store) -> None:
    intro(INTRO)
    table_rows = rows(store)
    stored = [r[0] for r in table_rows if r[-1] == "yes"]
    missing = [r[0] for r in table_rows if r[-1] != "yes"]
    first = stored[0] if stored else (missing[0] if missing else None)
    table = gr.Dataframe(table_rows, headers=COLUMNS, interactive=False, wrap=True, elem_id="models-table",
                         label="The registry (click a row to read its card)")
    try:  # the first stored model's card is on the page from the start
        card_text, onnx_file, code_text, pictures = model_card(store, first)
    except gr.Error as e:
        card_text, onnx_file, code_text, pictures = str(e), None, "", []
    with gr.Row(equal_height=True):
        # custom values: the API (and a row click) may name a registry model the store lacks, to read how to get it
        model = gr.Dropdown(stored, value=first if first in stored else None, elem_id="models-model", scale=4,
                            allow_custom_value=True,
                            label=f"Model in the store ({len(stored)}; the other {len(missing)} need training first: "
                                  "click their rows to see how)")
        show = gr.Button("Show card", elem_id="models-show", scale=1, min_width=120)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            card = gr.Markdown(card_text, elem_id="models-card")
        with gr.Column(scale=2, min_width=300):
            download = gr.DownloadButton("Download model.onnx", value=onnx_file, elem_id="models-download")
            code = gr.Code(code_text, language="python", label="Run it with onnxruntime (ten lines)",
                           elem_id="models-code")
            gallery = gr.Gallery(pictures, label="From the card", columns=1, height="auto", allow_preview=True,
                                 visible=bool(pictures), elem_id="models-pictures")

    def show_card(name: str) -> tuple[str, Any, str, gr.Gallery]:  # a card without pictures hides the gallery
        card_text, onnx_file, code_text, pictures = model_card(store, name)
        return card_text, onnx_file, code_text, gr.Gallery(pictures, visible=bool(pictures))

    outputs = [card, download, code, gallery]
    model.change(show_card, model, outputs, api_name="model_card")
    show.click(show_card, model, outputs, api_name=False)

    def on_select(evt: gr.SelectData) -> tuple[Any, ...]:  # Gradio finds the event argument by its annotation
        name = pick_row(table_rows, evt.index)
        if not isinstance(name, str):
            return (gr.skip(),) * (len(outputs) + 1)
        # a stored model is chosen in the dropdown (which shows its card); any other row shows how to get it
        return (name, *(gr.skip(),) * len(outputs)) if name in stored else (gr.skip(), *show_card(name))

    table.select(on_select, None, [model, *outputs], api_name=False)
