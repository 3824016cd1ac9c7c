"""Training: ``train(entry, recipe, ...)`` runs the recipe for any registry entry and returns the
best checkpoint. The entry's task record (``convzoo.tasks``) names its loop: classifiers
``convzoo.training.loop``, segmentation ``segmentation``, style ``style``, imported when asked for.

Run folder ``out_dir/<name>/``: ``best.pt`` (the best by the task's validation metric: accuracy,
pixel error; a style net's last weights), ``last.pt`` (for ``--resume``) and the metrics files.
"""

from __future__ import annotations

from pathlib import Path

from convzoo import tasks
from convzoo.errors import ConvzooError
from convzoo.registry import Store, StoredModel
from convzoo.types import ModelEntry, Recipe, training_options

RUNS = Path("runs")  # the run folders' root, unless --out names another
BEST, LAST = "best.pt", "last.pt"


def best_checkpoint(name: str, out_dir: Path | str = RUNS) -> Path:
    """Where a run of ``name`` keeps its best weights: what export and benchmarks read by default."""
    return Path(out_dir) / name / BEST


def train(entry: ModelEntry, recipe: Recipe | None = None, *, data_dir: Path | str | None = None,
          out_dir: Path | str = RUNS, device: str = "auto", resume: bool = False, max_steps: int | None = None,
          download: bool = False) -> Path:
    """Train ``entry`` with ``recipe`` (default: the entry's own); returns the best checkpoint's path."""
    recipe = recipe or entry.recipe
    training_options(entry.task, recipe.options)  # a misspelt option in a custom recipe is refused, not ignored
    return tasks.get(entry.task).hook("train")(entry, recipe, data_dir=data_dir, out_dir=out_dir, device=device,
                                       resume=resume, max_steps=max_steps, download=download)


__all__ = ["BEST", "LAST", "RUNS", "best_checkpoint", "train"]


def stored_for(option: str, name: str) -> StoredModel:
    """The whole stored file a recipe option (``teacher``, ``init_from``) names, or a sentence saying which
    option wanted it and what is wrong (the store's own: not there, did you mean, how to make it)."""
    try:
        stored = Store().get(name)
        stored.verify()
    except ConvzooError as e:
        raise ConvzooError(f"the recipe's {option} option: {e}") from None
    return stored
