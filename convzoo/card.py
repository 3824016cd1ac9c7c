"""Model cards (README.md in each model folder), Hugging Face style, rendered from the manifest alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from convzoo import datasets, tasks
from convzoo.registry import StoredModel
from convzoo.types import ModelEntry, training_options

LICENSE = "mit"  # the weights are ours, trained on openly licensed data (credited in each card)
EVAL_METRICS = {  # manifest metric -> the name shown on the Hub; what the model-index reports
    "accuracy": "Test accuracy", "dice": "Dice", "pixel_error": "Pixel error", "rand_error": "Rand error (foreground)",
}

BENCHMARK_ROWS = {  # the Fashion-MNIST README's benchmark table (zalandoresearch/fashion-mnist)
    "lenet": "2 Conv+pooling: 0.876-0.925",
    "alexnet": "2 Conv+pooling+ELU / AlexNet-like rows: 0.903-0.925",
    "vgg": "VGG16 (26M params): 0.935",
    "googlenet": "GoogLeNet with cross-entropy loss: 0.937",
    "resnet": "ResNet18: 0.949",
}


def ten_lines(stored: StoredModel) -> str:
    """Ten lines of Python that run the model with onnxruntime using only the file's own metadata."""
    task = stored.task
    head = (
        "import json, numpy as np, onnxruntime as ort\n"
        "from PIL import Image\n"
        f'session = ort.InferenceSession("{stored.name}/model.onnx")\n'
        "meta = session.get_modelmeta().custom_metadata_map\n"
        'pre = json.loads(meta["convzoo.preprocess"])\n'
        'image = Image.open("image.png").convert("L" if pre["color"] == "gray" else "RGB")\n'
        'image = image.resize(pre["size"][::-1]) if pre["size"] else image\n'
        'x = np.asarray(image, np.float32).reshape(image.height, image.width, -1).transpose(2, 0, 1)[None]\n'
        'x = (x * pre["scale"] - np.array(pre["mean"], np.float32)[:, None, None]) / np.array(pre["std"], np.float32)[:, None, None]\n'
        "out = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]\n"
    )
    tail = tasks.get(task).ten_lines
    return head + tail


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_section(metrics: Mapping[str, Any], labels: list[str]) -> list[str]:
    if not metrics:
        return ["Not evaluated yet: run `convzoo eval NAME`."]
    lines = ["| metric | value |", "| --- | --- |"]
    for key, value in metrics.items():
        if isinstance(value, (dict, list)) or key.endswith("_png"):
            continue
        lines.append(f"| {key.replace('_', ' ')} | {_fmt(value)} |")
    if metrics.get("confusion_png"):
        lines += ["", f"![confusion matrix on the test set]({metrics['confusion_png']})"]
    per_class = metrics.get("per_class_accuracy")
    if per_class:
        lines += ["", "Per-class accuracy:", "", "| class | accuracy |", "| --- | --- |"]
        lines += [f"| {label} | {per_class[label]:.4f} |" for label in labels if label in per_class]
    return lines


def _bench_section(bench: Mapping[str, Any]) -> list[str]:
    rows = bench.get("rows", [])
    if not rows:
        return []
    lines = [f"Latency measured by `convzoo bench` on {bench.get('machine', 'this machine')} ({bench.get('date', '')}), "
             "median milliseconds per batch, side by side in one run:", "",
             "| runtime | batch | median ms | images/s | speed-up vs PyTorch |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        speedup = row.get("speedup_vs_torch")
        lines.append(f"| {row['runtime']} | {row['batch']} | {row['median_ms']:.3f} | {row['images_per_s']:.0f} | "
                     f"{'-' if speedup is None else f'{speedup:.2f}x'} |")
    return lines


def _stored_file(run: Mapping[str, Any]) -> str:
    """A file another run used, as its record says: name, sha256, test accuracy, how long and where it trained."""
    scored = f", test accuracy {run['test_accuracy']:.4f}" if run.get("test_accuracy") else ""
    trained = (f", trained {run['seconds'] / 60:.1f} min on {run.get('device', 'another machine')}"
               if run.get("seconds") else "")
    return f"`{run['name']}` (sha256 `{run['sha256'][:12]}...`{scored}{trained})"


def _training_section(entry: ModelEntry, training: Mapping[str, Any]) -> list[str]:
    registry_recipe = entry.recipe.to_json()
    recipe = training.get("recipe") or registry_recipe
    lines = [f"- Data: {entry.dataset}" + (f" ({training['data']})" if training.get("data") else "")]
    if training.get("weights"):
        lines.append(f"- Weights: {training['weights']}")
    lines.append(f"- Recipe as run: {json.dumps({k: v for k, v in recipe.items() if v not in ({}, [], None)})}")
    if recipe.get("epochs") != registry_recipe.get("epochs") and "epochs" in recipe:
        time = "GPU time" if str(training.get("device", "")).startswith("cuda") else "time"
        lines.append(f"- Epochs: {recipe['epochs']} (the registry recipe has {registry_recipe.get('epochs')}; "
                     f"the run was sized to the {time} available)")
    opts = training_options(entry.task, recipe.get("options") or {})
    teacher = training.get("teacher")
    if teacher:
        lines.append(f"- Distilled from {_stored_file(teacher)}: the loss is "
                     f"{1 - opts.distill_weight:.2g} x cross-entropy with the labels + {opts.distill_weight:.2g} x "
                     f"T^2 x KL from the teacher's softened probabilities at T = {opts.distill_temperature:g} "
                     "(Hinton et al. 2015); the teacher's logits were computed once on the un-augmented training images")
    if getattr(opts, "dropout", None) is not None:
        lines.append(f"- Dropout while training: {opts.dropout:g} in every dropout layer, in place of the "
                     "architecture's own rate (evaluation and this file never drop)")
    start = training.get("init_from")
    if start:
        chain, earlier = [], start
        while earlier:
            chain.append(earlier)
            earlier = earlier.get("init_from")
        total = sum(run.get("seconds") or 0.0 for run in chain) + (training.get("seconds") or 0.0)
        together = f"; all {len(chain) + 1} runs together: {total / 60:.1f} min" if len(chain) > 1 else ""
        lines.append("- Started from the weights of the earlier " + ", itself continued from the earlier ".join(
            _stored_file(run) for run in chain) + f", read back from its ONNX file; the time below is this run's "
            f"alone{together}")
    if "epoch" in training:
        lines.append(f"- Checkpoint: epoch {training['epoch']}, chosen on the validation split held out from the "
                     "training set (the test set is never used for selection)")
    metrics = training.get("checkpoint_metrics") or {}
    for key in ("val_accuracy", "val_pixel_error"):
        if key in metrics:
            lines.append(f"- {key.replace('_', ' ')} at that checkpoint: {metrics[key]:.4f}")
    if "seconds" in training:
        lines.append(f"- Training time to this checkpoint: {training['seconds']:.0f} s ({training['seconds'] / 60:.1f} min)")
    for key in ("machine", "device", "weights_storage", "note"):
        if key in training:
            lines.append(f"- {key.replace('_', ' ').capitalize()}: {training[key]}")
    return lines


def _experiment_section(experiment: Mapping[str, Any], name: str) -> list[str]:
    """The shuffled-pixels experiment's 2x2 table (models x plain/shuffled), as measured by `convzoo eval`."""
    accuracy = experiment["accuracy"]
    lines = ["## The shuffled-pixels experiment", "", experiment["question"], "",
             "| model | plain pixels | shuffled pixels | change |", "| --- | --- | --- | --- |"]
    for arch, (plain, shuffled) in experiment["pairs"].items():
        cells = [f"**{accuracy[n]:.4f}**" if n == name else f"{accuracy[n]:.4f}" for n in (plain, shuffled)]
        change = (accuracy[shuffled] - accuracy[plain]) * 100
        lines.append(f"| {arch} | {cells[0]} | {cells[1]} | {change:+.2f} pt |")
    return lines + ["", f"Test accuracy on the {experiment['n']:,} Fashion-MNIST test images (`convzoo eval`); "
                        f"{experiment['note']}"]


def eval_results(stored: StoredModel) -> list[EvalResult]:
    """The measured metrics as the Hub's model-index reads them (nothing for a model not yet evaluated)."""
    entry, metrics = stored.entry, stored.metrics
    data = datasets.get(entry.dataset)
    dataset_id, dataset_name = data.hub_id or data.name, data.title
    return [EvalResult(task_type=tasks.get(entry.task).pipeline_tag, dataset_type=dataset_id, dataset_name=dataset_name,
                       dataset_split=str(metrics.get("split", "test")), metric_type=key, metric_value=metrics[key],
                       metric_name=label)
            for key, label in EVAL_METRICS.items() if isinstance(metrics.get(key), (int, float))]


def front_matter(stored: StoredModel) -> ModelCardData:
    """The card's YAML header: what the Hugging Face Hub reads (license, pipeline, library, data, results)."""
    entry = stored.entry
    hub_dataset = datasets.get(entry.dataset).hub_id
    return ModelCardData(
        license=LICENSE, library_name="onnx", pipeline_tag=tasks.get(entry.task).pipeline_tag,
        tags=["onnx", "convzoo", entry.task, entry.arch, entry.dataset],
        datasets=[hub_dataset] if hub_dataset and "/" in hub_dataset else None,
        model_name=stored.name, eval_results=eval_results(stored) or None)


def render_card(stored: StoredModel) -> str:
    m = stored.manifest
    entry = stored.entry
    metrics = m.get("metrics", {})
    training = m.get("training", {})
    parity = m.get("parity", {})
    labels = list(entry.labels)
    params, macs = entry.params or m.get("params"), entry.macs or m.get("macs")
    lines = ["---", front_matter(stored).to_yaml(), "---", "", f"# {stored.name}", "", entry.summary, ""]
    if entry.paper:
        lines += [f"**Paper:** {entry.paper}, {entry.year}.", ""]
    if m.get("arch_doc"):
        lines += ["## Architecture and how it differs from the paper", "", m["arch_doc"], ""]
    lines += [f"Parameters: {params:,}" if isinstance(params, int) else "Parameters: -",
              f"MACs per image: {macs:,}" if isinstance(macs, int) else "MACs per image: -",
              f"ONNX file: {m.get('size_bytes', 0) / 2**20:.2f} MiB, sha256 `{m.get('sha256', '')}`", ""]
    if m.get("source", {}).get("test_time"):  # the file's own graph, so its numbers below include it
        lines += [f"Test time: {m['source']['test_time']}.", ""]
    lines += ["## Evaluation", ""] + _metrics_section(metrics, labels) + [""]
    family = entry.arch.split("_")[0].rstrip("0123456789")
    if family in BENCHMARK_ROWS and entry.dataset == "fashion-mnist":
        lines += [f"Compared with the Fashion-MNIST benchmark row: {BENCHMARK_ROWS[family]}.", ""]
    if m.get("experiment"):
        lines += _experiment_section(m["experiment"], stored.name) + [""]
    if m.get("quantization"):
        q = m["quantization"]
        lines += ["## Quantization", "", f"Static INT8 (QDQ) from `{q.get('base')}`, calibrated on "
                  f"{q.get('calibration_images')} training images. FP32 accuracy {_fmt(q.get('fp32_accuracy'))}, "
                  f"INT8 accuracy {_fmt(q.get('int8_accuracy'))}.", ""]
        if q.get("speed_ms"):
            lines += ["Kept because it is faster than FP32 at " + " and ".join(
                          b.replace("_", " ") for b in q.get("faster_at", [])) + " (median ms per call, side by "
                      "side in one run, onnxruntime CPU):", "", "| batch | FP32 | INT8 |", "| --- | --- | --- |"]
            lines += [f"| {b.split('_')[1]} | {ms['fp32']:.3f} | {ms['int8']:.3f} |" for b, ms in q["speed_ms"].items()]
            lines += [""]
    bench = _bench_section(m.get("bench", {}))
    if bench:
        lines += ["## Speed", ""] + bench + [""]
    lines += ["## Training", ""] + _training_section(entry, training) + [""]
    if parity:
        lines += ["## Export parity (PyTorch vs. ONNX Runtime)", "",
                  f"On {parity.get('n')} {parity.get('inputs', 'inputs')}: max abs difference "
                  f"{parity.get('max_abs_diff', 0):.2e}, top-1 agreement {parity.get('top1_agreement', '-')}.", ""]
    lines += ["## Run it with onnxruntime", "", "The file carries its own preprocessing (`convzoo.preprocess`), "
              "labels and output description in its metadata:", "", "```python", ten_lines(stored).rstrip(), "```", ""]
    if m.get("credit"):
        lines += ["## Credit", "", m["credit"], ""]
    source = m.get("source", {})
    lines += ["## Provenance", "", f"Exported by convzoo {source.get('versions', {}).get('convzoo', '')} "
              f"at commit {source.get('git_commit') or '-'} on {source.get('date', '-')}.", ""]
    return "\n".join(lines)
