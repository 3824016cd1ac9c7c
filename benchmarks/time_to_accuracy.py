"""Wall time on this CPU to 92%, 93% and 94% test accuracy, road by road, read from training runs' own records.

    # train two roads one after the other in this process (quiet machine: nothing else running), then the table
    python benchmarks/time_to_accuracy.py train alexnet-fashion --epochs 10 --roads old fast --out runs/tta
    # the table of runs already made (each folder holds the metrics.json of `convzoo train`)
    python benchmarks/time_to_accuracy.py report runs/tta/old/alexnet-fashion runs/tta/fast/alexnet-fashion

A road is a way to train the same network from random weights, for the same number of epochs: ``old`` is the
loop before issue 26, the registry recipe without what that issue added (no teacher to distil from) in NCHW
memory; ``fast`` is the registry recipe as it is (distilled from its teacher where it names one) in
channels-last memory. Both drop a start file (``init_from``): time to accuracy counts from random weights.
The training loop evaluates the whole test set after every epoch and its ``seconds`` count everything (steps,
evaluation, checkpoints), so a road's time to a threshold is the ``seconds`` of the first epoch at or above it:
an upper bound, at epoch resolution. The accuracy is one pass of the network; a file that averages over the
mirror image scores a little higher.

Writes ``benchmarks/results/time_to_accuracy.json`` beside the printed table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

THRESHOLDS = (0.92, 0.93, 0.94)
RESULTS = Path(__file__).parent / "results" / "time_to_accuracy.json"
ROADS = ("old", "fast", "bf16")  # bf16: the fast road with bf16 autocast (a CPU with bf16 instructions)
ISSUE_26_OPTIONS = ("teacher", "distill_weight", "distill_temperature", "dropout")  # what the old road leaves out


WALL = "road.json"  # a road's whole wall time, written beside its metrics.json by `train`


def time_to(history: list[dict[str, Any]], threshold: float, setup: float = 0.0) -> tuple[float, int] | None:
    """(seconds, epoch) of the first epoch whose test accuracy reaches ``threshold``, ``setup`` seconds added;
    None if none did."""
    for row in history:
        if (row.get("test_accuracy") or 0.0) >= threshold:
            return float(row["seconds"]) + setup, int(row["epoch"])
    return None


def summarise(run_dir: Path) -> dict[str, Any]:
    """A run's times to each threshold. Where ``train`` timed the whole road, what the loop's ``seconds`` leave
    out (loading the data, a teacher's logits, the last save) is added to every time: an upper bound."""
    history = [row for row in json.loads((run_dir / "metrics.json").read_text()) if not row.get("partial")]
    if not history:
        raise SystemExit(f"{run_dir}/metrics.json has no finished epoch yet")
    wall = run_dir / WALL
    setup = max(0.0, json.loads(wall.read_text())["wall_seconds"] - history[-1]["seconds"]) if wall.exists() else 0.0
    reached = {f"{t:.2f}": time_to(history, t, setup) for t in THRESHOLDS}
    return {"run": str(run_dir), "epochs": len(history), "seconds": history[-1]["seconds"] + setup,
            "setup_seconds": setup if wall.exists() else None,
            "best_test_accuracy": max(r.get("test_accuracy") or 0.0 for r in history), "reached": reached}


def table(rows: list[dict[str, Any]]) -> str:
    def cell(hit: tuple[float, int] | None) -> str:
        return "not reached" if hit is None else f"{hit[0] / 60:.1f} min (epoch {hit[1]})"

    lines = ["| run | epochs | " + " | ".join(f"to {t:.0%}" for t in THRESHOLDS) + " | best test accuracy | wall |",
             "|---" * (len(THRESHOLDS) + 4) + "|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['epochs']} | " + " | ".join(cell(r["reached"][f"{t:.2f}"]) for t in THRESHOLDS)
                     + f" | {r['best_test_accuracy']:.4f} | {r['seconds'] / 60:.1f} min |")
    return "\n".join(lines)


def road_recipe(recipe: Any, road: str, epochs: int | None) -> Any:
    """The recipe a road trains: never from a start file; the old road also without the issue-26 options."""
    dropped = ("init_from",) + (ISSUE_26_OPTIONS if road == "old" else ())
    options = {k: v for k, v in recipe.options.items() if k not in dropped}
    if road == "bf16":
        options["cpu_bf16"] = True
    return dataclasses.replace(recipe, options=options, **({"epochs": epochs} if epochs else {}))


def train_roads(name: str, roads: list[str], epochs: int | None, threads: int, out: Path,
                max_steps: int | None, data_dir: str | None) -> list[Path]:
    import torch

    from convzoo.registry import get
    from convzoo.training import loop

    torch.set_num_threads(threads)
    entry = get(name)
    if "init_from" in entry.recipe.options:
        print(f"note: {name}'s registry recipe continues a stored file (lr {entry.recipe.lr}, "
              f"{entry.recipe.epochs} epochs); both roads run that schedule from random weights, which is not how "
              "its file was made")
    done = []
    for road in roads:
        loop.ClassifierSteps.channels_last = road != "old"  # the class's measured setting, per road
        started = time.perf_counter()
        run = loop.train_classifier(entry, road_recipe(entry.recipe, road, epochs), out_dir=out / road,
                                    device="cpu", max_steps=max_steps, data_dir=data_dir).parent
        (run / WALL).write_text(json.dumps({"road": road, "wall_seconds": time.perf_counter() - started}) + "\n")
        done.append(run)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train each road, then print the table")
    train.add_argument("name")
    train.add_argument("--roads", nargs="+", choices=ROADS, default=["old", "fast"])
    train.add_argument("--epochs", type=int, help="the schedule's length (default: the registry recipe's)")
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--out", type=Path, default=Path("runs/time-to-accuracy"))
    train.add_argument("--max-steps", type=int, help="stop each road early (a smoke run)")
    train.add_argument("--data-dir")
    report = sub.add_parser("report", help="the table of runs already made")
    report.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "train":
        runs = train_roads(args.name, args.roads, args.epochs, args.threads, args.out, args.max_steps, args.data_dir)
    else:
        runs = args.runs
    rows = [summarise(run) for run in runs]
    print(table(rows))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"thresholds": THRESHOLDS, "runs": rows}, indent=2) + "\n")
    print(f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
