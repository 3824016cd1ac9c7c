"""torch -> ONNX export, parity, metadata contract, evaluation, INT8 twin, bench: on real Fashion-MNIST."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from convzoo import registry
from convzoo.cli import main
from convzoo.evaluation import evaluate
from convzoo.export import export_entry
from convzoo.models import build
from convzoo.runtime import load_model

pytestmark = pytest.mark.slow  # exports torch models to ONNX

CONTRACT = ("convzoo.name", "convzoo.task", "convzoo.labels", "convzoo.preprocess", "convzoo.output",
            "convzoo.metrics", "convzoo.version", "convzoo.source")


def briefly_trained_lenet(path, fashion_dir, steps=60):
    """A LeNet-5 after a few SGD steps on real images: parity and metrics are then about real weights."""
    from convzoo.data.idx import load_split
    from convzoo.runtime import normalize_batch

    torch.manual_seed(0)
    entry = registry.get("lenet5-fashion")
    model = build(entry)
    images, labels = load_split("train", fashion_dir)
    x, y = torch.from_numpy(normalize_batch(images[:6400], entry.preprocess)), torch.from_numpy(labels[:6400]).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for i in range(steps):
        batch = slice((i * 128) % 6400, (i * 128) % 6400 + 128)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({"model": model.state_dict(), "entry": entry.name, "epoch": 0, "seconds": 1.0}, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fashion_dir):
    root = tmp_path_factory.mktemp("store")
    checkpoint = briefly_trained_lenet(root / "ckpt.pt", fashion_dir)
    stored = export_entry(registry.get("lenet5-fashion"), checkpoint=checkpoint, store_root=root, data_dir=fashion_dir)
    return registry.Store(root), stored


def test_export_passes_full_checker_and_parity(exported):
    _, stored = exported
    onnx.checker.check_model(onnx.load(str(stored.onnx_path)), full_check=True)
    parity = stored.manifest["parity"]
    assert parity["n"] == 256 and "Fashion-MNIST test images" in parity["inputs"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert stored.manifest["onnx"]["opset"] >= 17


def test_export_folds_the_mirror_average_the_entry_asks_for(exported, fashion_dir):
    """LeNet-5's recipe asks for it: the file averages over the mirror image, so it cannot tell an image from
    its mirror (the torch model, one pass, can), and its card and MACs count both passes."""
    from convzoo.data.idx import load_split
    from convzoo.export import mirror
    from convzoo.runtime import normalize_batch

    store, stored = exported
    assert registry.get("lenet5-fashion").passes == 2
    assert mirror.is_folded(onnx.load(str(stored.onnx_path)))
    x = normalize_batch(load_split("test", fashion_dir)[0][:64], registry.get("lenet5-fashion").preprocess)
    model = load_model("lenet5-fashion", store)
    np.testing.assert_array_equal(model.run(x), model.run(np.ascontiguousarray(x[..., ::-1])))
    assert stored.manifest["macs"] == 2 * 416_520 and stored.manifest["source"]["test_time"] == mirror.TEST_TIME
    assert "Test time: mirror average" in stored.card_path.read_text()


def test_metadata_contract(exported):
    _, stored = exported
    model = onnx.load(str(stored.onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    assert set(CONTRACT) <= set(props)
    assert json.loads(props["convzoo.labels"])[0] == "T-shirt/top"
    pre = json.loads(props["convzoo.preprocess"])
    assert pre["color"] == "gray" and pre["size"] == [28, 28] and pre["layout"] == "NCHW"
    assert json.loads(props["convzoo.output"]) == {"kind": "logits"}
    assert json.loads(props["convzoo.metrics"])["n"] == 10000  # evaluated right after export
    assert model.graph.input[0].name == "image"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis


def test_dynamic_batch_runs_any_batch(exported):
    store, _ = exported
    model = load_model("lenet5-fashion", store)
    for batch in (1, 3, 64):
        assert model.run(np.zeros((batch, 1, 28, 28), np.float32)).shape == (batch, 10)


def test_eval_writes_metrics_card_and_confusion(exported):
    store, stored = exported
    stored = store.get("lenet5-fashion")
    metrics = stored.metrics
    assert metrics["n"] == 10000 and metrics["split"] == "test"
    assert 0.5 < metrics["accuracy"] < 1.0  # 60 SGD steps: far better than chance (0.1), far from perfect
    assert set(metrics["per_class_accuracy"]) == set(registry.get("lenet5-fashion").labels)
    assert (stored.folder / "confusion.png").stat().st_size > 10_000
    card = stored.card_path.read_text()
    assert f"{metrics['accuracy']:.4f}" in card and "confusion.png" in card
    stored.verify()  # eval rewrote the ONNX metadata and the manifest's sha256 together


def test_export_writes_the_store_once_with_its_metrics(exported, fashion_dir, tmp_path, monkeypatch):
    from convzoo import packaging

    staged = []
    real = packaging.staged_model_folder
    monkeypatch.setattr(packaging, "staged_model_folder", lambda *a, **k: staged.append(a) or real(*a, **k))
    monkeypatch.setattr(packaging, "update_manifest", lambda *a, **k: pytest.fail("export rewrote the store"))
    checkpoint = exported[1].manifest["training"]["checkpoint"]
    stored = export_entry(registry.get("lenet5-fashion"), checkpoint=checkpoint, store_root=tmp_path,
                          data_dir=fashion_dir)
    assert len(staged) == 1
    assert stored.metrics["n"] == 10000 and (stored.folder / "confusion.png").is_file()
    assert stored.metrics["accuracy"] == exported[1].metrics["accuracy"]  # the same weights, the same number
    stored.verify()


def test_eval_again_leaves_an_unchanged_model_alone(exported, fashion_dir):
    store, _ = exported
    before = store.get("lenet5-fashion")
    mtime = before.onnx_path.stat().st_mtime_ns
    evaluate("lenet5-fashion", store=store, data_dir=fashion_dir)
    after = store.get("lenet5-fashion")
    assert after.sha256 == before.sha256 and after.onnx_path.stat().st_mtime_ns == mtime


def test_card_ten_lines_run_as_a_user_would(exported, tmp_path, fashion_dir):
    from convzoo.card import ten_lines
    from convzoo.data.idx import load_split

    store, _ = exported
    stored = store.get("lenet5-fashion")
    images, _ = load_split("test", fashion_dir)
    Image.fromarray(images[0]).save(tmp_path / "image.png")
    (tmp_path / "lenet5-fashion").symlink_to(stored.folder)
    code = ten_lines(stored)
    assert len(code.strip().splitlines()) <= 11
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = next(iter(load_model("lenet5-fashion", store).top_k(Image.open(tmp_path / "image.png"), k=1)))
    assert out.stdout.strip() == expected


def test_test_data_set_matches_onnxruntime(exported):
    from onnx import numpy_helper

    store, stored = exported
    folder = stored.folder / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor(str(folder / "input_0.pb")))
    y = numpy_helper.to_array(onnx.load_tensor(str(folder / "output_0.pb")))
    np.testing.assert_allclose(load_model("lenet5-fashion", store).run(x), y, atol=1e-5)


def test_int8_twin_and_bench(exported, fashion_dir, capsys):
    from convzoo.benchmark import bench
    from convzoo.export.quantize import quantize

    store, stored = exported
    twin = quantize("lenet5-fashion", store=store, data_dir=fashion_dir, calibration_images=256,
                    require_speedup=False)  # timing decides otherwise: see the test below
    q = twin.manifest["quantization"]
    assert q["fp32_accuracy"] - q["int8_accuracy"] <= 0.003  # kept only within 0.3 points of FP32
    assert set(q["speed_ms"]) == {"batch_1", "batch_64"} and all(v["fp32"] > 0 and v["int8"] > 0
                                                                 for v in q["speed_ms"].values())
    ops = {node.op_type for node in onnx.load(str(twin.onnx_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, static
    result = bench("lenet5-fashion", store=store, batch_sizes=[1, 8], repeats=3, write_card=True)
    runtimes = {row["runtime"] for row in result["rows"]}
    assert runtimes == {"PyTorch (inference_mode)", "ONNX Runtime FP32", "ONNX Runtime INT8"}
    assert "## Speed" in store.get("lenet5-fashion").card_path.read_text()


@pytest.mark.parametrize("int8_ms, kept", [(0.5, True), (2.0, False)])
def test_an_int8_twin_that_is_not_faster_is_not_kept(exported, fashion_dir, tmp_path, monkeypatch, int8_ms, kept):
    from convzoo.errors import ConvzooError
    from convzoo.export import quantize as quantize_module

    store, _ = exported
    monkeypatch.setattr(quantize_module, "speed_ms", lambda fp32, int8, images: {
        "batch_1": {"fp32": 1.0, "int8": int8_ms}, "batch_64": {"fp32": 1.0, "int8": int8_ms}})
    root = tmp_path / "root"
    if kept:
        twin = quantize_module.quantize("lenet5-fashion", store=store, data_dir=fashion_dir, calibration_images=64,
                                        write_root=root)
        assert twin.manifest["quantization"]["faster_at"] == ["batch_1", "batch_64"]
    else:
        with pytest.raises(ConvzooError, match="not faster than FP32.*batch 1 2.000 vs 1.000 ms"):
            quantize_module.quantize("lenet5-fashion", store=store, data_dir=fashion_dir, calibration_images=64,
                                     write_root=root)
        assert not root.exists() or not any(root.iterdir())  # nothing written


def test_export_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "alexnet-fashion", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_imagenet_export_takes_a_torchvision_state_dict_file(tmp_path, capsys):
    """`convzoo export resnet18-imagenet --weights FILE`: torchvision's weights (here a random init of
    torchvision's own model; the real ones download where online) exported with the 1000 class names."""
    import torchvision
    from skimage import data

    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    assert main(["export", "resnet18-imagenet", "--weights", str(weights), "--out", str(tmp_path / "store")]) == 0
    store = registry.Store(tmp_path / "store")
    stored = store.get("resnet18-imagenet")
    assert stored.manifest["parity"]["top1_agreement"] == 1.0
    assert stored.manifest["parity"]["max_abs_diff"] <= 1e-4
    assert "scikit-image" in stored.manifest["parity"]["inputs"]
    model = load_model("resnet18-imagenet", store)
    assert len(model.labels) == 1000 and model.labels[0] == "tench"
    assert model.preprocess(Image.fromarray(data.astronaut())).shape == (1, 3, 224, 224)
    assert len(model.top_k(Image.fromarray(data.coffee()), k=5)) == 5


def test_imagenet_export_without_network_or_file_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "vgg16-imagenet", "--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err
