"""Per-epoch metrics as CSV and JSON, and the training-curve PNG (matplotlib, Agg)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convzoo.registry import atomic_write_bytes, atomic_write_json, atomic_write_text

COLUMNS = ("epoch", "step", "partial", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
           "test_loss", "test_accuracy", "epoch_seconds", "seconds", "images_per_second")


def write_metrics(run_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """metrics.csv (the classifier's columns first, then any a task adds, lists left to the JSON) and metrics.json."""
    keys = list(dict.fromkeys(key for row in rows for key, value in row.items() if not isinstance(value, (list, dict))))
    fieldnames = [c for c in COLUMNS if c in keys] + [k for k in keys if k not in COLUMNS]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fieldnames, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "metrics.csv", text.getvalue())
    atomic_write_json(run_dir / "metrics.json", list(rows))


def plot_curves(path: Path, rows: Sequence[dict[str, Any]], title: str = "") -> None:
    """Loss and accuracy against epoch for train, validation and test."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
            values = [row.get(f"{split}_{metric}") for row in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
