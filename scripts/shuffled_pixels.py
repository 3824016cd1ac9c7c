"""The shuffled-pixels experiment, end to end: train, export and evaluate the models the store lacks, then write
the measured 2x2 table (LeNet-5 / MLP x plain / shuffled) into the four manifests and cards.

    python scripts/shuffled_pixels.py [--store models] [--runs runs] [--seeds 1 2]

Every number comes from `convzoo eval` on the 10,000 Fashion-MNIST test images. ``--seeds`` also trains the
two MLPs with other seeds (not exported) and evaluates them, so "within noise" has a measured spread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from convzoo.data.idx import load_split
from convzoo.packaging import update_manifest
from convzoo.registry import Store

PAIRS = {"LeNet-5": ("lenet5-fashion", "lenet5-fashion-shuffled"), "MLP": ("mlp-fashion", "mlp-fashion-shuffled")}
QUESTION = ("The lecture: *what would you do if the pixels were randomly shuffled?* An MLP should not care (a "
            "permutation of its inputs only relabels its first layer's weights); a CNN should, since its filters "
            "assume that neighbouring pixels are related. Both were trained with LeNet-5's recipe, plain and on one "
            "fixed pixel permutation (inside the model, after augmentation), and each file averages its logits over the "
            "image and its mirror image (the permutation applies to both).")


def convzoo(*args: str) -> None:
    print("$ convzoo", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "convzoo.cli", *args], check=True)


def seed_accuracy(name: str, seed: int, runs: Path) -> float:
    """Test accuracy of NAME trained with another seed, measured by the exported file like any other."""
    out = runs / f"seed-{seed}"
    convzoo("train", name, "--seed", str(seed), "--out", str(out))
    convzoo("export", name, "--checkpoint", str(out / name / "best.pt"), "--out", str(out / "store"))
    convzoo("eval", name, "--store", str(out / "store"))
    return float(Store(out / "store").get(name).metrics["accuracy"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="models", type=Path)
    p.add_argument("--runs", default="runs", type=Path)
    p.add_argument("--seeds", type=int, nargs="*", default=[], help="extra seeds for the two MLPs (noise)")
    args = p.parse_args()
    store = Store(args.store)
    for name in (n for pair in PAIRS.values() for n in pair):
        if store.find(name) is None:
            convzoo("train", name, "--out", str(args.runs))
            convzoo("export", name, "--checkpoint", str(args.runs / name / "best.pt"), "--out", str(args.store))
        if "accuracy" not in store.get(name).metrics:
            convzoo("eval", name, "--store", str(args.store))
    accuracy = {n: float(store.get(n).metrics["accuracy"]) for pair in PAIRS.values() for n in pair}
    note = "one training run per model (seed 0)."
    if args.seeds:
        spread = {n: [accuracy[n], *(seed_accuracy(n, s, args.runs) for s in args.seeds)] for n in PAIRS["MLP"]}
        note = ("MLP accuracies over seeds 0, " + ", ".join(map(str, args.seeds)) + ": "
                + "; ".join(f"{n} {min(v):.4f}-{max(v):.4f}" for n, v in spread.items()) + ".")
    experiment = {"question": QUESTION, "pairs": PAIRS, "accuracy": accuracy,
                  "n": len(load_split("test")[1]), "note": note}
    for name in accuracy:
        update_manifest(store.get(name), {"experiment": experiment})
    print(json.dumps(experiment, indent=2))


if __name__ == "__main__":
    main()
