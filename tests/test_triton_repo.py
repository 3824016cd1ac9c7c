"""The Triton model repository: config.pbtxt parsed with Triton's own ModelConfig proto and checked
against the ONNX graph; model files checked against the manifest's sha256.

The writer is loaded from its file path, so this test needs neither torch nor ``convzoo.export``'s
package import (which does need torch).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import tritonclient
from google.protobuf import text_format

from convzoo.errors import IntegrityError
from convzoo.registry import Store
from convzoo.runtime import load_model

pytestmark = pytest.mark.slow  # exports models and builds Triton repositories

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "convzoo" / "export" / "triton.py"


def load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


triton = load_file("convzoo_export_triton", WRITER)
# Triton's model_config.proto, as generated Python; shipped inside tritonclient (its grpc package needs grpcio,
# this file needs only protobuf)
model_config = load_file("triton_model_config_pb2", Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py")
DTYPE = model_config.DataType


def parse(path: Path):
    return text_format.Parse(path.read_text(), model_config.ModelConfig())


@pytest.fixture(scope="module")
def repo(tiny_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("triton")
    folders = triton.write_triton_repository(tiny_store, out, max_batch=16, delay_us=500)
    assert sorted(f.name for f in folders) == sorted(tiny_store.names())
    return out


def test_every_config_matches_its_onnx_graph(repo, tiny_store):
    for name in tiny_store.names():
        config = parse(repo / name / "config.pbtxt")
        graph = onnx.load(str(repo / name / "1" / "model.onnx")).graph
        assert config.name == name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == 16
        assert config.dynamic_batching.max_queue_delay_microseconds == 500
        initializers = {i.name for i in graph.initializer}
        graph_inputs = [v for v in graph.input if v.name not in initializers]
        for declared, values in ((config.input, graph_inputs), (config.output, list(graph.output))):
            assert [t.name for t in declared] == [v.name for v in values]
            for tensor, value in zip(declared, values):
                assert tensor.data_type == DTYPE.Value("TYPE_FP32")
                assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                assert dims[0] == -1  # the batch axis, which Triton adds from max_batch_size
                assert list(tensor.dims) == dims[1:]
        assert config.parameters["convzoo.task"].string_value == tiny_store.get(name).task


def test_dims_of_fixed_and_dynamic_models(repo):
    assert list(parse(repo / "tiny-fashion" / "config.pbtxt").input[0].dims) == [1, 28, 28]
    assert list(parse(repo / "tiny-cifar" / "config.pbtxt").output[0].dims) == [10]
    assert list(parse(repo / "tiny-membranes" / "config.pbtxt").input[0].dims) == [1, -1, -1]
    assert list(parse(repo / "tiny-style" / "config.pbtxt").output[0].dims) == [3, -1, -1]


def test_model_files_match_the_manifest_and_labels_travel(repo, tiny_store):
    for name in tiny_store.names():
        data = (repo / name / "1" / "model.onnx").read_bytes()
        assert hashlib.sha256(data).hexdigest() == tiny_store.get(name).sha256
    config = parse(repo / "tiny-fashion" / "config.pbtxt")
    assert config.output[0].label_filename == "labels.txt"
    labels = (repo / "tiny-fashion" / "labels.txt").read_text().splitlines()
    assert labels == load_model("tiny-fashion", tiny_store).labels
    assert not (repo / "tiny-membranes" / "labels.txt").exists()  # per-pixel classes: no classification labels
    assert not parse(repo / "tiny-membranes" / "config.pbtxt").output[0].label_filename
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]  # no staging folders left behind


def test_a_subset_and_a_rewrite(tiny_store, tmp_path):
    triton.write_triton_repository(tiny_store, tmp_path, names=["tiny-cifar"])
    (tmp_path / "tiny-cifar" / "stale.txt").write_text("from before")
    triton.write_triton_repository(tiny_store, tmp_path, names=["tiny-cifar"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-cifar"]
    assert not (tmp_path / "tiny-cifar" / "stale.txt").exists()  # the folder is replaced whole


def test_a_tampered_model_is_refused_and_nothing_is_written(tiny_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    with open(root / "tiny-style" / "model.onnx", "ab") as f:
        f.write(b"x")
    out = tmp_path / "repo"
    with pytest.raises(IntegrityError, match="sha256"):
        triton.write_triton_repository(Store(root), out, names=["tiny-style"])
    assert not out.exists() or not list(out.iterdir())


def test_writer_needs_no_torch():
    code = (f"import sys, importlib.util; sys.modules['torch'] = None\n"
            f"spec = importlib.util.spec_from_file_location('t', {str(WRITER)!r})\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "print(module.write_triton_repository.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "write_triton_repository", out.stderr
