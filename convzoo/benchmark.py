"""`convzoo bench NAME`: latency of PyTorch (inference_mode), ONNX Runtime FP32 and INT8, side by side.

All runtimes are timed in one process, one after another per batch size, on the same inputs,
so the ratios hold even on a shared, noisy machine. Medians of ``repeats`` calls after warm-up.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from convzoo import registry
from convzoo.errors import ConvzooError
from convzoo.packaging import update_manifest
from convzoo.registry import Store
from convzoo.runtime import load_model


def timings_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> list[float]:
    """Milliseconds of each of ``repeats`` calls, after ``warmup`` calls that are not counted."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    return statistics.median(timings_ms(fn, repeats, warmup))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def torch_runner(name: str) -> tuple[Callable[[np.ndarray], object], str] | None:
    """The PyTorch model for ``name`` (its trained checkpoint when present; latency does not depend on weights)."""
    try:
        import torch
    except ImportError:
        return None
    from convzoo.models import build
    from convzoo.training import best_checkpoint, checkpoints

    entry = registry.get(name)
    model = build(entry).eval()
    note = "random init (timing only)"
    checkpoint = best_checkpoint(name)
    if checkpoint.is_file():
        model.load_state_dict(checkpoints.load(checkpoint)["model"])
        note = str(checkpoint)

    def run(x: np.ndarray) -> object:
        with torch.inference_mode():
            image = torch.from_numpy(x)
            if entry.passes == 2:  # the file averages over the mirror image: PyTorch does the same work
                return (model(image) + model(image.flip(-1))) / 2
            return model(image)

    return run, note


def bench(name: str, store: Store | None = None, batch_sizes: list[int] | None = None, repeats: int = 50,
          write_card: bool = False) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    store = store or Store()
    entry = registry.get(name)
    if entry.quantization:
        raise ConvzooError(f"bench the FP32 model {entry.base}: its INT8 twin is timed beside it")
    fp32 = load_model(name, store)
    twin = store.find(f"{name}-int8")
    int8 = load_model(twin.name, store) if twin else None
    runner = torch_runner(name)
    size = entry.preprocess.size or (512, 512)
    rng = np.random.default_rng(0)
    rows = []
    for batch in batch_sizes or [1, 64]:
        x = rng.normal(size=(batch, entry.in_channels, *size)).astype(np.float32)
        timings: list[tuple[str, float]] = []
        if runner:
            timings.append(("PyTorch (inference_mode)", median_ms(lambda: runner[0](x), repeats)))
        timings.append(("ONNX Runtime FP32", median_ms(lambda: fp32.run(x), repeats)))
        if int8:
            timings.append(("ONNX Runtime INT8", median_ms(lambda: int8.run(x), repeats)))
        torch_ms = timings[0][1] if runner else None
        for runtime, ms in timings:
            rows.append({"runtime": runtime, "batch": batch, "median_ms": ms, "images_per_s": batch / ms * 1e3,
                         "speedup_vs_torch": (torch_ms / ms) if torch_ms else None})
    result = {"machine": machine(), "date": datetime.date.today().isoformat(), "repeats": repeats,
              "threads": "onnxruntime and torch defaults", "torch_weights": runner[1] if runner else None,
              "input": [entry.in_channels, *size], "rows": rows}
    table = Table(title=f"{name} on {result['machine']}")
    for column in ("runtime", "batch", "median ms", "images/s", "vs PyTorch"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for row in rows:
        speed = row["speedup_vs_torch"]
        table.add_row(row["runtime"], str(row["batch"]), f"{row['median_ms']:.3f}", f"{row['images_per_s']:.0f}",
                      "-" if speed is None else f"{speed:.2f}x")
    Console().print(table)
    if write_card:
        update_manifest(store.get(name), {"bench": result})
        if twin:
            update_manifest(store.get(twin.name), {"bench": result})
    return result
