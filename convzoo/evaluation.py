"""`convzoo eval`: an exported ONNX file, run by onnxruntime alone (no torch), on the real test set.

Preprocessing comes from the file's own ``convzoo.preprocess`` metadata, never from the registry,
so the number measured here is the number a user of the bare file gets.

Measuring needs onnxruntime alone (``convzoo[cpu]``). Recording the result rewrites the model's ONNX
metadata and card (onnx, huggingface_hub: ``convzoo[eval]``) and draws the confusion matrix
(matplotlib); each that is missing is skipped with a line saying so. A model read from the installed
(read-only) store is recorded in the user store (``registry.write_root_for``), never in site-packages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convzoo import registry, tasks
from convzoo.data.idx import load_split
from convzoo.errors import ConvzooError
from convzoo.registry import Store, StoredModel
from convzoo.runtime import OnnxModel, load_model, normalize_batch
from convzoo.types import ModelEntry

BATCH = 500


def batch_normalize(pixels: np.ndarray, model: OnnxModel) -> np.ndarray:
    pre = model.preprocess_spec
    if pre.size and tuple(pixels.shape[1:3]) != tuple(pre.size):
        raise ConvzooError(f"{model.name} expects {pre.size} images, the test set has {pixels.shape[1:3]}")
    return normalize_batch(pixels, pre)


def note(line: str) -> None:
    """A line for the person at the terminal (stderr: stdout holds the metrics as JSON)."""
    print(f"convzoo eval: {line}", file=sys.stderr)


def predict_all(model: OnnxModel, pixels: np.ndarray) -> np.ndarray:
    starts = range(0, len(pixels), BATCH)
    try:
        from tqdm import tqdm  # noqa: PLC0415 -- a progress bar where tqdm is installed; optional

        starts = tqdm(starts, desc=f"eval {model.name}", unit="batch", leave=False)
    except ImportError:
        pass
    return np.concatenate([model.run(batch_normalize(pixels[i:i + BATCH], model)).argmax(1) for i in starts])


def classification_metrics(labels: list[str], truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {"accuracy": float((truth == pred).mean()),
            "per_class_accuracy": {label: float(acc) for label, acc in zip(labels, per_class)},
            "confusion": confusion.tolist()}


def plot_confusion(confusion: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    shares = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def evaluate_classifier(entry: ModelEntry, model: OnnxModel, data_dir: str | Path | None,
                        limit: int | None) -> tuple[dict[str, Any], np.ndarray | None]:
    dataset = entry.dataset
    if dataset != "fashion-mnist":
        raise ConvzooError(f"`convzoo eval` evaluates Fashion-MNIST and ISBI 2012 models offline; "
                           f"{entry.name} is trained on {dataset}")

    pixels, truth = load_split("test", data_dir)
    if limit:
        pixels, truth = pixels[:limit], truth[:limit]
    pred = predict_all(model, pixels)
    metrics = classification_metrics(model.labels, truth, pred)
    confusion = np.asarray(metrics.pop("confusion"))
    metrics = {"dataset": dataset, "split": "test", "n": int(len(truth)), **metrics}
    return metrics, confusion


def measure(entry: ModelEntry, model: OnnxModel, data_dir: str | Path | None = None, limit: int | None = None
            ) -> tuple[dict[str, Any], np.ndarray | None]:
    """``model``'s test metrics by its task's measure (and a classifier's confusion matrix)."""
    task = tasks.get(entry.task)
    if task.evaluate is None:
        raise ConvzooError(f"{entry.name} is a {task.name} model: {task.unevaluated}")
    return task.hook("evaluate")(entry, model, data_dir, limit)


def evaluate(name: str, store: Store | None = None, data_dir: str | Path | None = None, limit: int | None = None,
             write: bool = True) -> dict[str, Any]:
    """Measure ``name`` on its test set; with ``write``, record it in the manifest, ONNX metadata and card
    (unless the numbers are the ones already recorded: then nothing is rewritten and the sha256 stays)."""
    store = store or Store()
    stored = store.get(name)
    model = load_model(name, store)
    metrics, confusion = measure(stored.entry, model, data_dir, limit)
    if write and not limit:
        record(stored, metrics, pictures(stored.name, model.labels, metrics, confusion))
    return metrics


def pictures(name: str, labels: list[str], metrics: dict[str, Any], confusion: np.ndarray | None
             ) -> Callable[[Path], None] | None:
    """What draws the evaluation's pictures into a model folder (None: nothing to draw, or no matplotlib);
    names them in ``metrics``."""
    if confusion is None:
        return None
    try:
        import matplotlib  # noqa: F401, PLC0415 -- only the picture needs it
    except ImportError:
        note("confusion.png not drawn: matplotlib is not installed (pip install 'convzoo[eval]')")
        return None
    title = f"{name}: accuracy {metrics['accuracy']:.4f} on {metrics['n']:,} test images"
    metrics["confusion_png"] = "confusion.png"

    def add_files(folder: Path) -> None:  # drawn into the staged folder, swapped in with the metrics
        plot_confusion(confusion, labels, title, folder / "confusion.png")

    return add_files


def record(stored: StoredModel, metrics: dict[str, Any], add_files: Callable[[Path], None] | None) -> None:
    """Write ``metrics`` into the model's manifest, ONNX metadata and card, with its pictures drawn."""
    pictured = all((stored.folder / value).is_file() for key, value in metrics.items() if key.endswith("_png"))
    if dict(stored.metrics) == metrics and pictured:
        note(f"{stored.name}: the same numbers as recorded; the store is left as it is")
        return
    try:
        from convzoo.packaging import update_manifest  # noqa: PLC0415 -- needs onnx and huggingface_hub: optional
    except ModuleNotFoundError as e:
        note(f"the metrics are not recorded in the store: recording rewrites model.onnx and its card, which needs "
             f"{e.name} (pip install 'convzoo[eval]')")
        return
    root = registry.write_root_for(stored.folder.parent)
    updated = update_manifest(stored, {}, metrics=metrics, add_files=add_files, root=root)
    note(f"recorded in {updated.folder}")
