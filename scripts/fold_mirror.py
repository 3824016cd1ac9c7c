"""Fold test-time mirror averaging into classifiers already in the store, without their training checkpoints.

    python scripts/fold_mirror.py lenet5-fashion resnet18-fashion [--store models]

For a model whose registry entry asks for it (``mirror_average`` in its recipe's options, so that
`convzoo export` folds it from a checkpoint too), the stored file's graph gains the mirror pass
(``convzoo.export.mirror``), is evaluated on the 10,000 test images (onnxruntime only), and replaces the old
folder in one atomic write with its card, confusion matrix and test data. What the old manifest knew (training,
parity of the single pass against PyTorch, the shuffled-pixels table) is kept. An INT8 twin is made again from
the folded file with `convzoo quantize NAME`; the out-of-distribution statistics with
`python scripts/ood_measure.py calibrate NAME` (they are keyed by the file's sha256); its latency with
`convzoo bench NAME` (the one-pass file's timings are dropped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
from onnx import numpy_helper

from convzoo import registry
from convzoo.errors import ConvzooError
from convzoo.export import mirror
from convzoo.export.torch_onnx import evaluated
from convzoo.packaging import write_model
from convzoo.registry import Store
from convzoo.runtime import cpu_session
from convzoo.types import ModelMetadata

WRITTEN_BY_WRITE_MODEL = {"name", "entry", "sha256", "size_bytes", "metrics", "source", "onnx"}


def fold_stored(name: str, store: Store) -> None:
    entry = registry.get(name)
    if entry.passes != 2:
        raise ConvzooError(f"{name}'s registry entry does not ask for mirror averaging (recipe option mirror_average)")
    stored = store.get(name)
    model = onnx.load(str(stored.onnx_path))
    if mirror.is_folded(model):
        print(f"{name}: already averages over the mirror image; left as it is")
        return
    folded = mirror.fold(model)
    inputs = numpy_helper.to_array(onnx.load_tensor(str(stored.folder / "test_data_set_0" / "input_0.pb")))
    session = cpu_session(folded)
    test_data = (inputs, session.run(None, {session.get_inputs()[0].name: inputs})[0])
    source = dict(stored.manifest.get("source", {})) | {"test_time": mirror.TEST_TIME}
    # "bench" timed the one-pass file: `convzoo bench NAME` times this one
    kept = {k: v for k, v in stored.manifest.items() if k not in WRITTEN_BY_WRITE_MODEL | {"bench"}}
    kept["macs"] = entry.macs  # both passes
    before = stored.metrics.get("accuracy")
    size_multiple = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}).size_multiple
    metrics, add_files = evaluated(entry, folded, source, size_multiple, None)
    written = write_model(registry.write_root_for(stored.folder.parent), entry, folded, metrics=metrics,
                          manifest_extra=kept, source=source, test_data=test_data, add_files=add_files)
    print(f"{name}: test accuracy {before} -> {metrics.get('accuracy')}; written to {written.folder}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+")
    p.add_argument("--store", type=Path, help="the store to rewrite (default: the usual search path)")
    args = p.parse_args()
    store = Store(args.store) if args.store else Store()
    try:
        for name in args.names:
            fold_stored(name, store)
    except ConvzooError as e:
        sys.exit(f"fold_mirror: {e}")


if __name__ == "__main__":
    main()
