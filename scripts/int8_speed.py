"""Re-time every INT8 twin in a store against its FP32 model, side by side, as `convzoo quantize` now does
before keeping one; record the figures in the twin's manifest and card, and remove a twin that is not faster
at batch 1 or at batch 64 (the store then stops offering it).

    python scripts/int8_speed.py [--store models] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from convzoo.data.idx import load_split
from convzoo.evaluation import batch_normalize
from convzoo.export.quantize import speed_ms
from convzoo.packaging import update_manifest
from convzoo.registry import Store
from convzoo.runtime import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="models", type=Path)
    p.add_argument("--dry-run", action="store_true", help="measure and print; change nothing")
    args = p.parse_args()
    store = Store(args.store)
    pixels, _ = load_split("test")
    report = {}
    for twin in [m for m in store.models() if m.manifest.get("quantization")]:
        base = store.get(twin.manifest["quantization"]["base"])
        images = batch_normalize(pixels[:64], load_model(base.name, store))
        speed = speed_ms(onnx.load(str(base.onnx_path)), onnx.load(str(twin.onnx_path)), np.asarray(images))
        faster = [batch for batch, ms in speed.items() if ms["int8"] < ms["fp32"]]
        report[twin.name] = {"speed_ms": speed, "faster_at": faster}
        print(twin.name, json.dumps(report[twin.name]), flush=True)
        if args.dry_run:
            continue
        if faster:
            quantization = dict(twin.manifest["quantization"]) | report[twin.name]
            update_manifest(twin, {"quantization": quantization})
        else:
            # renamed out of the store in one step first: a kill during the removal never leaves half a model
            retired = Path(tempfile.mkdtemp(dir=args.store, prefix=f".{twin.name}.removed-"))
            os.replace(twin.folder, retired / twin.name)
            shutil.rmtree(retired)
            print(f"removed {twin.name}: not faster than {base.name} at batch 1 or 64")


if __name__ == "__main__":
    main()
