"""What every training run shares, whatever its task: the run folder, resume (refused when the recipe
changed), the optimizer and the schedule a recipe names, kernel flags, autocast and the progress bar.

The task loops (``loop`` for classifiers, ``segmentation``, ``style``) keep only what is theirs: data,
loss, validation and the metric that picks the best checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from convzoo.errors import ConvzooError
from convzoo.training import checkpoints
from convzoo.types import ModelEntry, Recipe, TrainingOptions, training_options


def options(entry: ModelEntry, recipe: Recipe) -> Any:
    """The recipe's options as ``entry``'s task's typed record (``convzoo.types``)."""
    return training_options(entry.task, recipe.options)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer. No weight decay on biases and norm scales: decaying them only fights the
    normalisation. Adam and AdamW run as one fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": recipe.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    fused = bool(params) and params[0].device.type == "cuda"
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr, fused=fused or None)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, fused=fused or None)
    raise ConvzooError(f"unknown optimizer {recipe.optimizer!r}; use sgd, adamw or adam")


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int,
                   warmup_steps: int = 0, warmup: float = 0.25) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's schedule, stepped once per optimizer step.

    onecycle: Smith & Topin 2017, warm-up to lr (``warmup`` of the steps) then anneal to ~0;
    cosine: cosine annealing to 0, after ``warmup_steps`` of linear warm-up when given;
    constant: lr throughout, after the warm-up when given.
    """
    if recipe.schedule == "onecycle":
        momentum = recipe.optimizer != "sgd" or recipe.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps,
                                                   pct_start=warmup, cycle_momentum=momentum)
    if recipe.schedule not in ("cosine", "constant"):
        raise ConvzooError(f"unknown schedule {recipe.schedule!r}; use onecycle, cosine or constant")
    if warmup_steps <= 0:
        if recipe.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    cosine = recipe.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)


def autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA (no loss scaling needed); the CPU stays in float32 unless ``cpu_bf16`` asks."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has bf16 instructions (AMX or AVX512-BF16): there a bf16 training step took 0.5-0.6x the
    float32 one (2-core Xeon with AMX); without them 10-20x longer (2-core EPYC, AVX2), benchmarks/train_step.py."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


@contextlib.contextmanager
def kernels(device: torch.device, opts: TrainingOptions) -> Iterator[None]:
    """cudnn.benchmark and TF32 on CUDA (the fastest kernels); deterministic kernels only when asked.

    On the CPU the kernels these CNNs use are already deterministic for a fixed thread count (a test
    trains twice and compares weights bit for bit), and ``torch.use_deterministic_algorithms`` is not
    cheap there: it imports torch._inductor, seconds per process.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not opts.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if not opts.deterministic:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def check_resumable(state: dict[str, Any], entry: ModelEntry, recipe: Recipe, path: Path) -> None:
    if state.get("entry") != entry.name:
        raise ConvzooError(f"{path} belongs to {state.get('entry')!r}, not {entry.name!r}; pick another --out")
    saved, given = state.get("recipe", {}), recipe.to_json()
    changed = sorted(key for key in set(saved) | set(given) if saved.get(key) != given.get(key))
    if changed:
        diffs = ", ".join(f"{key}: {saved.get(key)!r} in the run, {given.get(key)!r} now" for key in changed)
        raise ConvzooError(f"cannot resume {path}: the recipe differs ({diffs}); resume with the run's settings, "
                           f"or start a new run without --resume (or in another --out)")


def start_run(run_dir: Path, entry: ModelEntry, recipe: Recipe, resume: bool, main: bool = True,
              map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Open the run folder; with ``resume``, the state of its ``last.pt`` (checked against the recipe), if any."""
    last = run_dir / checkpoints.LAST
    state = None
    if resume and last.is_file():
        state = checkpoints.load(last, map_location=map_location)
        check_resumable(state, entry, recipe, last)
    elif resume and main:
        print(f"convzoo: nothing to resume in {run_dir}; starting a new run", file=sys.stderr)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoints.remove_stale_temporaries(run_dir)
    return state


def progress(total: int, initial: int, desc: str, unit: str = "step", enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=min(initial, total), desc=desc, unit=unit, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=1.0)
