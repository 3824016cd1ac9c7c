"""Drawing feature maps and filters: signed values on a diverging colour map centred on zero, always
with the scale beside them, so red means "this filter responded" and blue "the opposite pattern is here".

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, safe in Gradio's
worker threads) and returned as Pillow images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

DIVERGING = "RdBu_r"  # blue negative, white zero, red positive
DPI = 90
Panel = tuple[str, np.ndarray] | None  # (title, HxW values); None leaves the place empty
Scale = Literal["shared", "row", "panel"]


def symmetric_limit(*arrays: np.ndarray, robust: bool = False) -> float:
    """The largest magnitude, so that zero sits in the middle of the colour map (1 for all-zero maps). ``robust``:
    the 99th percentile instead, so that a few extreme pixels (a photo's sharpest edge) do not wash every other
    response out to white (issue 23); what lies beyond is drawn in the end colour."""
    top = (lambda a: float(np.percentile(np.abs(a), 99))) if robust else (lambda a: float(np.max(np.abs(a))))
    biggest = max((top(np.asarray(a, np.float64)) for a in arrays if np.size(a)), default=0.0)
    return biggest if biggest > 0 and np.isfinite(biggest) else 1.0


def figure_to_image(fig: Figure) -> Image.Image:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())


def map_grid(rows: Sequence[Sequence[Panel]], scale: Scale = "row", title: str | None = None,
             panel_inches: float = 2.3, cmap: str = DIVERGING, robust: bool = False) -> Image.Image:
    """Rows of maps, each with its colour scale: one for all ("shared"), per row, or per panel. The title sits at
    the left, clear of the image toolbar Gradio puts in the top right corner."""
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=1)
    fig = Figure(figsize=(panel_inches * n_cols + 0.9, panel_inches * n_rows + (0.5 if title else 0.1)),
                 dpi=DPI, layout="constrained")
    if title:
        fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    every = [p[1] for r in rows for p in r if p is not None]
    shared = symmetric_limit(*every, robust=robust)
    extend = "both" if robust else "neither"
    for i, row in enumerate(rows):
        row_limit = symmetric_limit(*[p[1] for p in row if p is not None], robust=robust)
        image = None
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            panel = row[j] if j < len(row) else None
            if panel is None:
                ax.set_axis_off()
                continue
            name, values = panel
            limit = {"shared": shared, "row": row_limit}.get(scale) or symmetric_limit(values, robust=robust)
            image = ax.imshow(np.asarray(values, np.float64), cmap=cmap, vmin=-limit, vmax=limit,
                              interpolation="nearest")
            ax.set_title(name, fontsize=9)
            if scale == "panel":
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, extend=extend).ax.tick_params(labelsize=7)
        if scale == "row" and image is not None:
            fig.colorbar(image, ax=list(axes[i]), fraction=0.03, pad=0.01, extend=extend).ax.tick_params(labelsize=7)
    if scale == "shared" and every:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01, extend=extend).ax.tick_params(
            labelsize=7)
    return figure_to_image(fig)


def feature_maps(maps: np.ndarray, titles: Sequence[str] | None = None, columns: int = 8,
                 scale: Scale = "panel", title: str | None = None, panel_inches: float = 1.7) -> Image.Image:
    """``(N, H, W)`` maps wrapped into rows of ``columns``."""
    maps = np.asarray(maps)
    titles = list(titles) if titles is not None else [f"map {i + 1}" for i in range(len(maps))]
    columns = max(1, min(columns, len(maps)))
    panels: list[Panel] = [(t, m) for t, m in zip(titles, maps)]
    rows = [panels[i:i + columns] for i in range(0, len(panels), columns)]
    return map_grid(rows, scale=scale, title=title, panel_inches=panel_inches)


def filter_grid(weights: np.ndarray, columns: int = 8, title: str | None = None,
                panel_inches: float = 1.2) -> Image.Image:
    """First-layer filters ``(F, C, kh, kw)``: colour filters as pictures (as in the AlexNet paper's
    figure 3), one-channel filters on the diverging map with one shared scale."""
    weights = np.asarray(weights, np.float64)
    n = len(weights)
    columns = max(1, min(columns, n))
    n_rows = -(-n // columns)
    if weights.shape[1] != 3:
        panels: list[Panel] = [(f"{i + 1}", w[0]) for i, w in enumerate(weights)]
        rows = [panels[i:i + columns] for i in range(0, n, columns)]
        return map_grid(rows, scale="shared", title=title, panel_inches=panel_inches)
    fig = Figure(figsize=(panel_inches * columns, panel_inches * n_rows + (0.5 if title else 0.1)), dpi=DPI,
                 layout="constrained")
    if title:
        fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    axes = np.atleast_2d(fig.subplots(n_rows, columns, squeeze=False))
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            w = weights[k].transpose(1, 2, 0)
            ax.imshow(0.5 + w / (2 * symmetric_limit(w)), interpolation="nearest")  # grey = 0, per filter
            ax.set_title(f"{k + 1}", fontsize=8)
    return figure_to_image(fig)
