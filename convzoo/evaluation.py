"""`convzoo eval`: an exported ONNX file, run by onnxruntime alone (no torch), on the real test set.

Preprocessing comes from the file's own ``convzoo.preprocess`` metadata, never from the registry,
so the number measured here is the number a user of the bare file gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convzoo.data.idx import load_split
from convzoo.errors import ConvzooError
from convzoo.packaging import update_manifest
from convzoo.registry import Store, StoredModel
from convzoo.segmentation_eval import evaluate_segmentation
from convzoo.runtime import OnnxModel, load_model, normalize_batch

BATCH = 500


def batch_normalize(pixels: np.ndarray, model: OnnxModel) -> np.ndarray:
    pre = model.preprocess_spec
    if pre.size and tuple(pixels.shape[1:3]) != tuple(pre.size):
        raise ConvzooError(f"{model.name} expects {pre.size} images, the test set has {pixels.shape[1:3]}")
    return normalize_batch(pixels, pre)


def predict_all(model: OnnxModel, pixels: np.ndarray) -> np.ndarray:
    from tqdm import tqdm

    preds = []
    for i in tqdm(range(0, len(pixels), BATCH), desc=f"eval {model.name}", unit="batch", leave=False):
        preds.append(model.run(batch_normalize(pixels[i:i + BATCH], model)).argmax(1))
    return np.concatenate(preds)


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


def evaluate_classifier(stored: StoredModel, model: OnnxModel, data_dir: str | Path | None,
                        limit: int | None) -> tuple[dict[str, Any], np.ndarray | None]:
    dataset = stored.manifest["entry"]["dataset"]
    if dataset != "fashion-mnist":
        raise ConvzooError(f"`convzoo eval` evaluates Fashion-MNIST and ISBI 2012 models offline; "
                           f"{stored.name} is trained on {dataset}")

    pixels, truth = load_split("test", data_dir)
    if limit:
        pixels, truth = pixels[:limit], truth[:limit]
    pred = predict_all(model, pixels)
    metrics = classification_metrics(model.labels, truth, pred)
    confusion = np.asarray(metrics.pop("confusion"))
    metrics = {"dataset": dataset, "split": "test", "n": int(len(truth)), **metrics}
    return metrics, confusion


def evaluate(name: str, store: Store | None = None, data_dir: str | Path | None = None, limit: int | None = None,
             write: bool = True) -> dict[str, Any]:
    """Measure ``name`` on its test set; with ``write``, record it in the manifest, ONNX metadata and card."""
    store = store or Store()
    stored = store.get(name)
    model = load_model(name, store)
    task = stored.manifest["entry"]["task"]
    confusion = None
    if task == "classification":
        metrics, confusion = evaluate_classifier(stored, model, data_dir, limit)
    elif task == "segmentation":
        metrics = evaluate_segmentation(model, data_dir=data_dir)
    else:
        raise ConvzooError(f"{name} is a style network: it has no test metric; look at docs/style-contact-sheet.png")
    if write and not limit:
        add_files = None
        if confusion is not None:
            title = f"{name}: accuracy {metrics['accuracy']:.4f} on {metrics['n']:,} test images"
            metrics["confusion_png"] = "confusion.png"

            def add_files(folder: Path) -> None:  # drawn into the staged folder, swapped in with the metrics
                plot_confusion(confusion, model.labels, title, folder / "confusion.png")
        update_manifest(stored, {}, metrics=metrics, add_files=add_files)
    return metrics
