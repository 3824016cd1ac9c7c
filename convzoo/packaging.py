"""Turn an ONNX graph into a store folder: metadata_props, manifest, card, test data. onnx only, no torch.

The ``convzoo.*`` metadata_props are the public contract of every convzoo model (DESIGN.md, "ONNX
files explain themselves"); this module is the one place that writes them.
"""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from convzoo import __version__
from convzoo.card import render_card
from convzoo.registry import (CARD_FILE, MANIFEST_FILE, ONNX_FILE, StoredModel, atomic_write_json, atomic_write_text,
                              check_manifest, sha256_file, staged_model_folder, write_root_for)
from convzoo.types import ModelEntry, ModelMetadata


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "convzoo": __version__}
    for dist in ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return versions


def provenance(entry: ModelEntry, **extra: Any) -> dict[str, Any]:
    return {"dataset": entry.dataset, "git_commit": git_commit(), "versions": library_versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "export_machine": f"{platform.machine()} {platform.processor() or ''}".strip(), **extra}


def metadata_props(entry: ModelEntry, metrics: Mapping[str, Any], source: Mapping[str, Any],
                   size_multiple: int = 1) -> dict[str, str]:
    """The ``convzoo.*`` props of an export, through the one typed record that the runtime reads back."""
    return ModelMetadata.of_entry(entry, metrics=metrics, source=source, version=__version__,
                                  size_multiple=size_multiple).to_props()


def set_metadata(model: onnx.ModelProto, props: Mapping[str, str]) -> None:
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "convzoo"
    model.producer_version = __version__
    model.doc_string = f"{props.get('convzoo.name', '')}: convzoo model; see its convzoo.* metadata_props"


def write_test_data(folder: Path, inputs: np.ndarray, outputs: np.ndarray, input_name: str, output_name: str) -> None:
    """The ONNX Model Zoo's ``test_data_set_0/`` (``input_0.pb``, ``output_0.pb`` TensorProtos)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input_0.pb").write_bytes(numpy_helper.from_array(inputs, input_name).SerializeToString())
    (folder / "output_0.pb").write_bytes(numpy_helper.from_array(outputs, output_name).SerializeToString())


def write_model(root: Path, entry: ModelEntry, model: onnx.ModelProto, *, metrics: Mapping[str, Any],
                manifest_extra: Mapping[str, Any], source: Mapping[str, Any], card: str | None = None,
                test_data: tuple[np.ndarray, np.ndarray] | None = None,
                size_multiple: int = 1, add_files: Callable[[Path], None] | None = None) -> StoredModel:
    """Write ``root/entry.name`` atomically: ONNX with metadata, test data, ``add_files(folder)`` (pictures),
    card, then the manifest."""
    set_metadata(model, metadata_props(entry, metrics, source, size_multiple))
    onnx.checker.check_model(model, full_check=True)
    with staged_model_folder(Path(root), entry.name) as folder:
        onnx_path = folder / ONNX_FILE
        onnx.save_model(model, str(onnx_path))
        if test_data is not None:
            write_test_data(folder / "test_data_set_0", *test_data, model.graph.input[0].name, model.graph.output[0].name)
        if add_files is not None:
            add_files(folder)
        manifest = {
            "name": entry.name,
            "entry": entry.to_json(),
            "sha256": sha256_file(onnx_path),
            "size_bytes": onnx_path.stat().st_size,
            "metrics": dict(metrics),
            "source": dict(source),
            "onnx": {"opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
                     "input": model.graph.input[0].name, "output": model.graph.output[0].name},
            **manifest_extra,
        }
        check_manifest(entry.name, manifest)  # the one schema: a write that breaks it never enters the store
        stored = StoredModel(entry.name, folder, manifest)
        if card is None:
            card = render_card(stored)
        atomic_write_text(folder / CARD_FILE, card)
        atomic_write_json(folder / MANIFEST_FILE, manifest)  # last: a folder without a manifest is not a model
    final = Path(root) / entry.name
    return StoredModel(entry.name, final, manifest)


def update_manifest(stored: StoredModel, changes: Mapping[str, Any], metrics: Mapping[str, Any] | None = None,
                    add_files: Callable[[Path], None] | None = None, root: Path | None = None) -> StoredModel:
    """Merge ``changes`` (and ``metrics``) into a stored model's manifest, ONNX metadata and card.

    The new folder is built whole beside the old one (a copy, the ONNX file rewritten with the
    metrics, ``add_files(folder)`` for pictures, card, manifest last) and swapped in by one atomic
    rename, so a kill at any moment leaves the old model or the new one, each matching its sha256.
    It lands in ``root``: by default the model's own store, unless that is the installed (read-only)
    one, then ``$CONVZOO_HOME`` or the user store (``registry.write_root_for``).
    """
    manifest = dict(stored.manifest) | dict(changes)
    root = Path(root) if root is not None else write_root_for(stored.folder.parent)
    name = stored.name
    with staged_model_folder(root, name) as folder:
        shutil.copytree(stored.folder, folder, dirs_exist_ok=True, copy_function=shutil.copy2)
        onnx_path = folder / ONNX_FILE
        if metrics is not None:
            manifest["metrics"] = dict(stored.manifest.get("metrics", {})) | dict(metrics)
            model = onnx.load(str(onnx_path))
            set_metadata(model, {"convzoo.metrics": json.dumps(manifest["metrics"])})
            onnx.save_model(model, str(onnx_path))
            manifest["sha256"] = sha256_file(onnx_path)
            manifest["size_bytes"] = onnx_path.stat().st_size
        if add_files is not None:
            add_files(folder)
        check_manifest(name, manifest)
        updated = StoredModel(name, folder, manifest)
        atomic_write_text(folder / CARD_FILE, render_card(updated))
        atomic_write_json(folder / MANIFEST_FILE, manifest)
    return StoredModel(name, root / name, manifest)
