"""What each task is, one record per task (numpy and Pillow, never torch or onnxruntime): its output,
the metric it is judged by, its Hugging Face pipeline tag, the model a demo suggests, how a stored
model's answer is made and typed (``predict``: ``Classification``, ``Segmentation``, ``Stylized``), the
smallest input it runs on, whether large inputs run tile by tile, how its export is checked and
stored, and the last line of a card's ten lines of Python.

A place that would write ``if task == "segmentation"`` asks the record instead; a new task's record is
one module here (README, "Adding a fourth task", lists the few other places a task touches). The output kind itself is ``types.OUTPUT_OF_TASK``, which
``ModelEntry`` checks on construction; the records read it from there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Metric:
    key: str  # as a manifest's metrics name it
    label: str  # as people read it
    better: Literal["higher", "lower"]

    def improves(self, value: float, best: float | None) -> bool:
        """Is ``value`` better than ``best`` (None: nothing yet) in this metric's direction?"""
        return best is None or (value > best if self.better == "higher" else value < best)


@dataclass(frozen=True)
class Task:
    name: str
    output: str  # the first output's kind, as convzoo.output says it
    output_name: str  # the first output's name in an exported graph
    metrics: tuple[Metric, ...]  # what cards and the catalogue report, the headline first
    pipeline_tag: str  # the Hugging Face Hub's
    suggested: str  # the model a demo opens with, and a missing-model text suggests
    predict: Callable[..., Any]  # (OnnxModel, image, *, k, max_side) -> the task's typed answer
    # The heavy side, named rather than imported ("module:function"), so that this table stays light to import
    # and a Space that never trains or evaluates can leave those modules out:
    # train(entry, recipe, *, data_dir, out_dir, device, resume, max_steps, download) -> the best checkpoint
    train: str
    # evaluate(entry, OnnxModel, data_dir, limit) -> (metrics, confusion matrix or None); None: no test metric
    evaluate: str | None = None
    unevaluated: str = ""  # what to look at instead, when there is no test metric
    min_side: int = 1  # the smallest spatial side a model of this task runs on
    tiled: bool = False  # inputs larger than the service's tile run tile by tile
    agreement: str | None = None  # export parity: the key of PyTorch's and onnxruntime's argmax agreement
    top_k: bool = False  # a score per label: a top-k of labels means something (KServe's classification extension)
    half_storage: bool = False  # exported with float16 weights (computed in float32)
    ten_lines: str = ""  # the last line of the card's ten lines of Python (``out`` is the first output)

    def hook(self, name: str) -> Callable[..., Any]:
        """The function ``train`` or ``evaluate`` names, imported now."""
        module, _, function = (getattr(self, name) or "").partition(":")
        if not function:
            raise KeyError(f"the {self.name} task has no {name} hook")
        return getattr(importlib.import_module(module), function)

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
