"""The one place that says how large the app's grids may be, and the boxes that show it (issue 22).

Every size a person types on the filter playground (by hand, 1-D, graph, 3-D, on an image) is bounded
here, chosen from what the view can draw and a person can still read; past it the view says so in a
sentence before any work. The rules themselves (numbers of any spelling, images) are ``convzoo.bounds``;
this module only holds the ranges; ``common.size_box`` puts them on the page (``minimum``, ``maximum`` and
the info text). Stdlib only (no gradio), so the by-hand arithmetic (``convzoo.beyond_grid``) reads its limits
here too.

Why these numbers:
- by hand (2-D), the image is at most 12x12 and a filter 7x7: a sum of 49 products is the most a person
  reads through. Padding stops at 6 = 7 - 1, the "full" padding of the largest filter (more only adds
  outputs that see nothing but zeros), so the padded image drawn cell by cell is at most 24x24, about a
  screen at 44 px a cell. Stride, dilation and pooling stop at 12, the image's side: a step or a gap
  wider than the image shows nothing new.
- 1-D: a signal of 24 values (a spectrogram frame of 24 mel bands); padding 6 keeps the drawn row at 36
  cells, a screen's width at 40 px.
- 3-D: 4 frames of 8x8, as the lecture's two frames need and a page shows side by side; padding half the
  input per axis (2 frames, 4 rows or columns) keeps the padded frames drawn at most 8 of 16x16.
- graph: 12 nodes on a circle of 320 px is as many as stay apart.
- values: exact numbers within a million, with at most 64 characters
  (``convzoo.bounds``); a typed exponent past e30 is refused before any arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convzoo import bounds


@dataclass(frozen=True)
class Size:
    """A whole number a person types, from ``low`` to ``high``."""

    what: str  # as a sentence names it: "padding", "pooling size"
    low: int
    high: int

    @property
    def info(self) -> str:
        return f"{self.low} to {self.high}"

    def parse(self, value: Any, what: str | None = None) -> int:
        """The typed value as an int in range; else ``BadNumber`` with one sentence, before any work. Any
        spelling is bounded first (``convzoo.bounds``): ``1e5000``, 5,000 digits, ``nan``, a unicode digit."""
        what = what or self.what
        if value is None:  # a browser's number box sends nothing for what it cannot hold, such as 1e5000
            raise bounds.BadNumber(f"{what} is empty or not a number the box can hold; type a whole number from "
                                   f"{self.low} to {self.high}")
        if isinstance(value, str) and not value.strip():
            raise bounds.BadNumber(f"{what} is empty; type a whole number from {self.low} to {self.high}")
        try:
            return int(bounds.parse_number(value, what, self.low, self.high, integer=True))
        except bounds.BadNumber:
            raise bounds.BadNumber(f"{what} must be a whole number from {self.low} to {self.high}, "
                                   f"got {shown(value)}") from None


# ---------------------------------------------------------------------------------------------- by hand (2-D)
IMAGE_SIDE = 12
FILTER_SIDE = 7
IMAGE_ROWS = Size("image rows", 1, IMAGE_SIDE)
IMAGE_COLUMNS = Size("image columns", 1, IMAGE_SIDE)
FILTER_SIZE = Size("filter size", 1, FILTER_SIDE)
STRIDE = Size("stride", 1, IMAGE_SIDE)
PADDING = Size("padding", 0, FILTER_SIDE - 1)
DILATION = Size("dilation", 1, IMAGE_SIDE)
POOL_SIZE = Size("pooling size", 1, IMAGE_SIDE)
POOL_STRIDE = Size("pooling stride", 1, IMAGE_SIDE)
FILTERS = Size("number of filters", 1, 4)

# ---------------------------------------------------------------------------------------------- on an image
IMAGE_VIEW_SIDE = Size("image size", 32, 512)  # the photo is scaled down to this before any filter runs

# ---------------------------------------------------------------------------------------------- model tabs' sliders
# Sliders bound themselves on the page; these bound what the API sends to the same handlers.
STYLE_SIDE = Size("output size cap", 128, 1024)  # 1024 px: about 2 s of style network on a 2-core CPU
FRACTION = (0.0, 1.0)  # style strength, mask opacity
SHIFT = (-50.0, 50.0)  # percent of the image side: past half, the object has left the frame
ANGLE = (-180.0, 180.0)
SCALE = (0.3, 2.0)

# ---------------------------------------------------------------------------------------------- 1-D signal
SIGNAL_LENGTH = 24
SIGNAL_PADDING = Size("padding", 0, 6)
SIGNAL_POOL_SIZE = Size("pooling size", 1, SIGNAL_LENGTH)
SIGNAL_POOL_STRIDE = Size("pooling stride", 1, SIGNAL_LENGTH)

# ---------------------------------------------------------------------------------------------- graph
GRAPH_NODES = 12

# ---------------------------------------------------------------------------------------------- 3-D volume
VOLUME_FRAMES = 4
VOLUME_SIDE = 8
AXES = ("depth (frames)", "height (rows)", "width (columns)")
VOLUME_SHAPE = (VOLUME_FRAMES, VOLUME_SIDE, VOLUME_SIDE)  # the largest input, and the largest kernel
KERNEL_SIZE = tuple(Size(f"kernel {axis.split()[1][1:-1]}", 1, n) for axis, n in zip(AXES, VOLUME_SHAPE))
VOLUME_STRIDE = tuple(Size(f"stride along {axis}", 1, n) for axis, n in zip(AXES, VOLUME_SHAPE))
VOLUME_PADDING = tuple(Size(f"padding along {axis}", 0, n // 2) for axis, n in zip(AXES, VOLUME_SHAPE))
VOLUME_DILATION = tuple(Size(f"dilation along {axis}", 1, n) for axis, n in zip(AXES, VOLUME_SHAPE))

# ---------------------------------------------------------------------------------------------- typed text
VALUE = 10 ** 6  # a grid value, weight, bias or feature lies within +-VALUE: wider does not fit a cell
TEXT_CHARACTERS = 1_000  # a signal, a kernel, node features, a graph's neighbours: a few lines of numbers
VOLUME_CHARACTERS = 4_000  # 4 frames of 8x8 values of up to a dozen characters each, with their commas


def shown(value: Any, width: int = 24) -> str:
    """A typed value as a sentence quotes it: short, and never ``str`` of a 5,000-digit int (which raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 18:
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[:width - 4] + "...'"[: 4 if isinstance(value, str) else 3]


def checked_text(value: Any, what: str, limit: int = TEXT_CHARACTERS) -> str:
    """Typed text of at most ``limit`` characters, refused in a sentence before it is parsed."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise bounds.BadNumber(f"the {what} has {len(text):,} characters; by hand, type at most {limit:,}")
    return text
