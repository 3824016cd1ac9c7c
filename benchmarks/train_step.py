"""The CPU training step of each Fashion-MNIST classic, under the settings a CPU fast path could change.

One process, one model at a time, every setting timed in interleaved rounds (so the machine's noise falls on
all of them alike): forward, loss, backward and an SGD step on a random batch, the way
``convzoo.training.fit`` steps. Times are milliseconds per 128 images, median over rounds.

    python benchmarks/train_step.py                      # the five classics, the default settings
    python benchmarks/train_step.py --models lenet5-fashion resnet18-fashion --compile --bf16

Writes ``benchmarks/results/train_step.json`` (and prints a Markdown table). Run it on a quiet machine:
a training in the background halves every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from convzoo.benchmark import machine
from convzoo.models import build
from convzoo.registry import get
from convzoo.training import skeleton

CLASSICS = ["lenet5-fashion", "alexnet-fashion", "vgg16-fashion", "googlenet-fashion", "resnet18-fashion"]
RESULTS = Path(__file__).parent / "results" / "train_step.json"


class Setting:
    def __init__(self, name: str, *, threads: int = 2, batch: int = 128, channels_last: bool = False,
                 bf16: bool = False, compile: bool = False):
        self.name, self.threads, self.batch = name, threads, batch
        self.channels_last, self.bf16, self.compile = channels_last, bf16, compile


def settings(args: argparse.Namespace) -> list[Setting]:
    out = [Setting("baseline (2 threads, NCHW, batch 128)"), Setting("1 thread", threads=1),
           Setting("channels-last", channels_last=True), Setting("batch 256", batch=256)]
    if args.bf16:
        out.append(Setting("bf16 autocast", bf16=True))
    if args.compile:
        out.append(Setting("torch.compile", compile=True))
    return out


def stepper(name: str, setting: Setting) -> Callable[[], None]:
    """One training step of ``name`` under ``setting``, on a fixed random batch (speed does not depend on data)."""
    torch.manual_seed(0)
    entry = get(name)
    model = build(entry).train()
    memory = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    trained = torch.compile(model) if setting.compile else model
    channels = 1 if entry.preprocess.color == "gray" else 3
    x = torch.randn(setting.batch, channels, *entry.preprocess.size).contiguous(memory_format=memory)
    y = torch.randint(0, len(entry.labels), (setting.batch,))

    def step() -> None:
        with skeleton.autocast(torch.device("cpu"), cpu_bf16=setting.bf16):  # as the loop's cpu_bf16 option
            out = trained(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(name: str, chosen: list[Setting], rounds: int, seconds: float) -> dict[str, float]:
    """Median ms per 128 images of each setting, timed in ``rounds`` interleaved rounds of about ``seconds``."""
    steps = {}
    for s in chosen:
        torch.set_num_threads(s.threads)
        steps[s.name] = stepper(name, s)
        for _ in range(2):  # warm-up: allocator, first-call kernels, compilation
            steps[s.name]()
    samples: dict[str, list[float]] = {s.name: [] for s in chosen}
    for _ in range(rounds):
        for s in chosen:
            torch.set_num_threads(s.threads)
            n, start = 0, time.perf_counter()
            while n < 1 or time.perf_counter() - start < seconds:
                steps[s.name]()
                n += 1
            samples[s.name].append((time.perf_counter() - start) / n * 1e3 * 128 / s.batch)
    torch.set_num_threads(2)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=CLASSICS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="about this long per setting per round")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = settings(args)
    table = {}
    for name in args.models:
        table[name] = measure(name, chosen, args.rounds, args.seconds)
        print(name, {k: round(v, 1) for k, v in table[name].items()}, flush=True)
    print(f"\nms per 128 images, one training step ({machine()}, torch {torch.__version__})\n")
    print("| model | " + " | ".join(s.name for s in chosen) + " |")
    print("|---" * (len(chosen) + 1) + "|")
    for name, row in table.items():
        base = row[chosen[0].name]
        cells = [f"{row[chosen[0].name]:.0f}"] + [f"{row[s.name]:.0f} ({base / row[s.name]:.2f}x)" for s in chosen[1:]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "torch": torch.__version__, "unit": "ms per 128 images",
                                   "rounds": args.rounds, "results": table}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
