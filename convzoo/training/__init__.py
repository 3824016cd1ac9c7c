"""Training: ``train(entry, recipe, ...)`` runs the recipe for any registry entry and returns the
best checkpoint. Classifiers use ``convzoo.training.loop``; segmentation and style models have
their own loops (``segmentation``, ``style``), imported when they are asked for.

Run folder ``out_dir/<name>/``: ``best.pt`` (best validation accuracy), ``last.pt`` (for
``--resume``), ``metrics.csv``, ``metrics.json`` and ``curves.png``.
"""

from __future__ import annotations

from pathlib import Path

from convzoo.types import ModelEntry, Recipe, training_options


def train(entry: ModelEntry, recipe: Recipe | None = None, *, data_dir: Path | str | None = None,
          out_dir: Path | str = "runs", device: str = "auto", resume: bool = False, max_steps: int | None = None,
          download: bool = False) -> Path:
    """Train ``entry`` with ``recipe`` (default: the entry's own); returns the best checkpoint's path."""
    recipe = recipe or entry.recipe
    training_options(entry.task, recipe.options)  # a misspelt option in a custom recipe is refused, not ignored
    if entry.task == "segmentation":
        from convzoo.training.segmentation import train_segmentation

        return train_segmentation(entry, recipe, data_dir=data_dir, out_dir=out_dir, device=device, resume=resume,
                                  max_steps=max_steps)
    if entry.task == "style":
        from convzoo.training.style import train_style

        return train_style(entry, recipe, data_dir=data_dir, out_dir=out_dir, device=device, resume=resume,
                           max_steps=max_steps)

    from convzoo.data.fashion_mnist import load_classification
    from convzoo.training.distributed import resolve_device
    from convzoo.training.loop import fit

    resolve_device(device)  # a bad --device is reported before any work
    # Loaded on the CPU: fit moves it to this process's device (one GPU per rank under torchrun).
    data = load_classification(entry.dataset, data_dir=data_dir, download=download, val_split=recipe.val_split,
                               val_seed=int(recipe.options.get("val_seed", 0)))
    return fit(entry, recipe, data, out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


__all__ = ["train"]
