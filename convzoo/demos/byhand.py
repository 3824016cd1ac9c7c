"""The by-hand widget every playground view shares: exact values in small tables, a click on any output
writes out the sum that made it and lights up what fed it (issue 25: one widget, where the 2-D exercise and
the 1-D, graph and 3-D views each had their own CSS, click script, event and error convention).

- ``CSS`` and ``CLICK_JS`` go on each ``gr.HTML`` page: ``gr.HTML(page, css_template=CSS, js_on_load=CLICK_JS)``;
- an element with ``data-cell='label'`` is clickable; a click sends ``label`` to the page's ``.click`` handler
  as ``CellClick.cell``;
- classes: ``cz-sel`` the chosen output, ``cz-win`` what fed it (its window), ``cz-pad`` zero padding,
  ``cz-feed`` a graph's nodes and edges that fed the chosen node;
- a mistake is a sentence beside the page (``message``) and the page keeps its last good state or empties,
  never a traceback: a Markdown box the view returns, as the 2-D view's ``#pg-message`` (issue 22).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from convzoo.convolution import format_number

CSS = """
.cz-row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.cz-card { border: 1px solid #d0d4dc; border-radius: 8px; padding: 10px 12px; background: #fafbfc; color: #111; }
.cz-card h4 { margin: 0 0 6px 0; font-size: 15px; color: #111; }
.cz-grid { border-collapse: collapse; margin: 4px 0; font-family: ui-monospace, monospace; font-size: 16px; }
.cz-grid th { font: 13px sans-serif; color: #444; text-align: right; padding-right: 8px; white-space: nowrap; }
.cz-grid td { border: 1px solid #9aa3b2; min-width: 40px; height: 34px; text-align: center; padding: 2px 6px;
  background: #fff; color: #111; }
.cz-grid td.cz-empty { border: none; background: transparent; }
.cz-grid td[data-cell] { cursor: pointer; }
.cz-grid td[data-cell]:hover { background: #e8f0ff; }
.cz-grid td.cz-sel { background: #ffd866 !important; font-weight: 700; outline: 2px solid #c77d00; }
.cz-grid td.cz-win { background: #ffe9a8; font-weight: 700; outline: 2px solid #c77d00; }
.cz-grid td.cz-pad { background: #eceef2; color: #888; }
.cz-grid td small { display: block; font-size: 11px; color: #8a5a00; font-weight: 400; }
.cz-sizes td, .cz-sizes th { font: 14px ui-monospace, monospace; text-align: left; padding: 3px 8px; }
.cz-note { font-size: 13px; color: #444; margin: 2px 0 8px 0; }
.cz-sum { font-family: ui-monospace, monospace; font-size: 15px; background: #fff7dd; color: #111;
  border-left: 4px solid #c77d00; padding: 8px 10px; margin-top: 8px; white-space: normal; word-break: break-word; }
.cz-op { font-size: 28px; align-self: center; color: #555; }
.cz-warn { color: #8a2a00; max-width: 260px; }
.cz-graph g[data-cell] { cursor: pointer; }
.cz-graph circle { fill: #fff; stroke: #5a6375; stroke-width: 2; }
.cz-graph .cz-feed circle { fill: #ffe9a8; stroke: #c77d00; }
.cz-graph .cz-sel circle { fill: #ffd866; stroke: #c77d00; stroke-width: 4; }
.cz-graph line { stroke: #9aa3b2; stroke-width: 2; }
.cz-graph line.cz-feed { stroke: #c77d00; stroke-width: 4; }
.cz-graph text { font: 15px ui-monospace, monospace; fill: #111; text-anchor: middle; dominant-baseline: central; }
.cz-graph text.cz-h { font-size: 13px; fill: #555; }
"""
CLICK_JS = """
element.addEventListener('click', (event) => {
  const cell = event.target.closest('[data-cell]');
  if (cell) { trigger('click', {cell: cell.dataset.cell}); }
});
"""


class CellClick(gr.EventData):
    """A click on an output value or a node (``CLICK_JS`` sends its ``data-cell`` label); ``cell`` is None for a
    click beside them, which keeps the choice."""

    def __init__(self, target: Any, data: Any) -> None:
        super().__init__(target, data)
        self.cell = data.get("cell") if isinstance(data, dict) else None


Look = tuple[str | None, str, str]  # a value's data-cell label (None: not clickable), its class, a note below it
PLAIN: Callable[..., Look] = lambda *index: (None, "", "")  # noqa: E731


def td(value: Any, cell: str | None = None, cls: str = "", note: str = "") -> str:
    """One value, exact as on the slides (``7/2``); ``cell`` makes it clickable, ``note`` is written below it."""
    attributes = f" data-cell='{html.escape(cell)}'" if cell else ""
    attributes += f" class='{cls}'" if cls else ""
    small = f"<small>{html.escape(note)}</small>" if note else ""
    return f"<td{attributes}>{html.escape(format_number(value))}{small}</td>"


def table(values: np.ndarray, look: Callable[[int, int], Look] = PLAIN, testid: str = "") -> str:
    """A 2-D grid of values; ``look(i, j)`` says how each one shows."""
    rows = "".join("<tr>" + "".join(td(v, *look(i, j)) for j, v in enumerate(row)) + "</tr>"
                   for i, row in enumerate(np.asarray(values, dtype=object)))
    tested = f" data-testid='{testid}'" if testid else ""
    return f"<table class='cz-grid'{tested}>{rows}</table>"


def sum_box(text: str, testid: str) -> str:
    """The chosen value's sum, written out."""
    return f"<div class='cz-sum' data-testid='{testid}'>{html.escape(text)}</div>"


def escaped(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", text)  # the user's own text must not become markdown


def message(error: Exception) -> str:
    """A mistake as the sentence shown beside the page."""
    return f"**Cannot compute this:** {escaped(str(error))}"
