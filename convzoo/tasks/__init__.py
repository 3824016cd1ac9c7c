"""What each task is, one record per task (stdlib only): its output, the metric it is judged by, its
Hugging Face pipeline tag, the model a demo suggests, the smallest input it runs on, whether large
inputs run tile by tile, and the last line of a card's ten lines of Python.

A place that would write ``if task == "segmentation"`` asks the record instead; a new task is one
module here (and its registry entries). The output kind itself is ``types.OUTPUT_OF_TASK``, which
``ModelEntry`` checks on construction; the records read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    key: str  # as a manifest's metrics name it
    label: str  # as people read it
    better: Literal["higher", "lower"]


@dataclass(frozen=True)
class Task:
    name: str
    output: str  # the first output's kind, as convzoo.output says it
    metrics: tuple[Metric, ...]  # what cards and the catalogue report, the headline first
    pipeline_tag: str  # the Hugging Face Hub's
    suggested: str  # the model a demo opens with, and a missing-model text suggests
    min_side: int = 1  # the smallest spatial side a model of this task runs on
    tiled: bool = False  # inputs larger than the service's tile run tile by tile
    ten_lines: str = ""  # the last line of the card's ten lines of Python (``out`` is the first output)

    @property
    def headline(self) -> Metric | None:
        """The metric a model of this task is judged by (None: none is measured)."""
        return self.metrics[0] if self.metrics else None


from convzoo.tasks.classification import CLASSIFICATION  # noqa: E402 -- the records need the types above
from convzoo.tasks.segmentation import SEGMENTATION  # noqa: E402
from convzoo.tasks.style import STYLE  # noqa: E402

TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, SEGMENTATION, STYLE)}


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"no task {name!r}; the tasks are {', '.join(TASKS)}") from None
