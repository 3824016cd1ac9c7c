"""Train the zoo on one lent GPU in one call: calibrate, size the recipes to the time left, train
everything concurrently, and pack slim checkpoints and logs into $OUT.

    PYTHONPATH=. python3 scripts/gpu_train_zoo.py --budget 420 --data-dir .carry/fashion-mnist

Calibration times a few optimiser steps of each classifier alone; the plan then assumes the GPU
runs the jobs one after another (the safe bound), and scales epochs down if the recipes do not fit.
Every number comes back in $OUT/plan.json and the training logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

from convzoo import registry
from convzoo.models import build

CLASSIFIERS = ["lenet5-fashion", "alexnet-fashion", "vgg16-fashion", "vgg16bn-fashion", "googlenet-fashion",
               "resnet18-fashion"]
OTHERS = ["unet-membranes", "style-starry-night", "style-great-wave", "style-shipwreck", "style-wheat-field",
          "style-grande-jatte"]
TRAIN_IMAGES = 60000


def step_seconds(name: str, device: str, steps: int = 25) -> float:
    """Seconds per optimiser step of one classifier alone (bf16 autocast, channels_last), after warm-up."""
    entry = registry.get(name)
    model = build(entry).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(entry.recipe.batch_size, entry.in_channels, *entry.preprocess.size, device=device)
    y = torch.randint(0, len(entry.labels), (entry.recipe.batch_size,), device=device)
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def plan_epochs(budget: float, device: str, names: list[str]) -> dict[str, dict]:
    plan = {}
    for name in [n for n in CLASSIFIERS if n in names]:
        entry = registry.get(name)
        entry = registry.get(name)
        seconds = step_seconds(name, device)
        steps_per_epoch = (TRAIN_IMAGES - entry.recipe.val_split) // entry.recipe.batch_size
        epoch_seconds = seconds * steps_per_epoch * 1.35  # + evaluation of validation and test sets each epoch
        plan[name] = {"recipe_epochs": entry.recipe.epochs, "step_ms": seconds * 1e3, "epoch_s_alone": epoch_seconds}
    # Small nets at batch 128 are bound by kernel launches, not the GPU's arithmetic, so concurrent
    # jobs overlap well: the estimate is the longest single job or a third of the serial sum.
    if not plan:
        return plan
    serial = sum(p["recipe_epochs"] * p["epoch_s_alone"] for p in plan.values())
    longest = max(p["recipe_epochs"] * p["epoch_s_alone"] for p in plan.values())
    estimate = max(longest, serial / 3)
    scale = min(1.0, budget / estimate)
    for p in plan.values():
        p["epochs"] = max(5, int(p["recipe_epochs"] * scale))
    print(f"serial {serial:.0f}s, longest {longest:.0f}s, estimate {estimate:.0f}s for budget {budget:.0f}s: "
          f"epochs scaled by {scale:.2f}", flush=True)
    return plan


def pack(out: Path, runs: Path) -> None:
    """Slim checkpoints (weights + metrics, no optimizer state) and logs, in tars of at most ~15 MB."""
    staging = runs / "_slim"
    staging.mkdir(exist_ok=True)
    files = []
    for run in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in run.iterdir():
            if path.name == "best.pt":
                state = torch.load(path, map_location="cpu", weights_only=True)
                slim = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "rng", "scaler")}
                target = staging / run.name / "best.pt"
                target.parent.mkdir(exist_ok=True)
                torch.save(slim, target)
                files.append((target, f"{run.name}/best.pt"))
            elif path.suffix in (".json", ".csv", ".png", ".log", ".txt"):
                files.append((path, f"{run.name}/{path.name}"))
    files += [(runs / name, name) for name in ("plan.json", "summary.json") if (runs / name).is_file()]
    bins: list[list[tuple[Path, str]]] = [[]]
    size = 0
    order = [*CLASSIFIERS[:3], *CLASSIFIERS[4:], *OTHERS, CLASSIFIERS[3]]  # what matters most first

    def priority(item: tuple[Path, str]) -> tuple[int, str]:
        run = item[1].split("/")[0]
        return (order.index(run) if run in order else len(order), item[1])

    for path, arc in sorted(files, key=priority):
        if size + path.stat().st_size > 15_500_000 and bins[-1]:
            bins.append([])
            size = 0
        bins[-1].append((path, arc))
        size += path.stat().st_size
    for i, group in enumerate(bins):
        with tarfile.open(out / f"runs-{i}.tar.gz", "w:gz") as tar:
            for path, arc in group:
                tar.add(path, arcname=arc)
    print(f"packed {len(files)} files into {len(bins)} tars", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=420, help="seconds for all training together")
    p.add_argument("--data-dir", default=".carry/fashion-mnist")
    p.add_argument("--runs", default="/tmp/runs")
    p.add_argument("--only", help="comma-separated subset (smoke tests)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--max-steps", type=int, help="smoke runs: cap every job's optimiser steps")
    args = p.parse_args()
    out = Path(os.environ.get("OUT", "/tmp/out"))
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    wanted = args.only.split(",") if args.only else CLASSIFIERS + OTHERS
    torch.backends.cudnn.benchmark = True
    plan = plan_epochs(args.budget * 0.9, args.device, wanted) if args.device == "cuda" else {}
    (runs / "plan.json").write_text(json.dumps(plan, indent=2))
    print(json.dumps(plan, indent=1), flush=True)
    jobs = {}
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", CONVZOO_DATA=os.path.abspath(args.data_dir))
    for name in wanted:
        cmd = [sys.executable, "-m", "convzoo.cli", "train", name, "--device", args.device, "--out", str(runs)]
        if name in plan:
            cmd += ["--epochs", str(plan[name]["epochs"])]
        if args.max_steps:
            cmd += ["--max-steps", str(args.max_steps)]
        if name in CLASSIFIERS:
            cmd += ["--data-dir", args.data_dir]
        log = open(runs / f"{name}.log", "w")
        jobs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.time(), log)
    deadline = time.time() + args.budget + 60
    while any(job.poll() is None for job, _, _ in jobs.values()):
        if time.time() > deadline:
            for name, (job, _, _) in jobs.items():
                if job.poll() is None:
                    print(f"{name}: over the deadline, stopped", flush=True)
                    job.kill()
            break
        time.sleep(5)
    summary = {}
    for name, (job, start, log) in jobs.items():
        log.close()
        run = runs / name
        (run).mkdir(exist_ok=True)
        (runs / f"{name}.log").replace(run / "train.log")
        metrics = run / "metrics.json"
        summary[name] = {"returncode": job.returncode, "seconds": round(time.time() - start),
                         "last": json.loads(metrics.read_text())[-1] if metrics.is_file() else None}
        tail = (run / "train.log").read_text()[-600:]
        print(f"== {name}: rc={job.returncode}\n{tail}", flush=True)
    (runs / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    pack(out, runs)
    print(json.dumps(summary, indent=1, default=str)[-3000:], flush=True)


if __name__ == "__main__":
    main()
