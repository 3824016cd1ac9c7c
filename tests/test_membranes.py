"""Membrane data, joint augmentation, the onnxruntime segmentation metrics and tiling, and a training smoke run."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from convzoo import registry
from convzoo.data.augment_seg import sample_tiles
from convzoo.data.membranes import read_sections, read_test_images, synthetic_sections, write_pairs
from convzoo.errors import ConvzooError, DataNotFoundError
from convzoo.packaging import write_model
from convzoo.runtime import OnnxModel, load_model, softmax
from convzoo.runtime import segment_tiled
from convzoo.segmentation_eval import evaluate_segmentation
from convzoo.segmentation_metrics import dice, pixel_error, rand_error

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- data


def test_reads_the_isbi_sections_and_holds_out_the_last():
    sections = read_sections()  # data/isbi2012-em in the repository
    assert sections.images.shape == (25, 512, 512) and sections.images.dtype == np.uint8
    assert set(np.unique(sections.labels)) == {0, 1}
    assert 0.1 < 1 - sections.labels.mean() < 0.4  # membranes are a minority of pixels
    assert list(sections.names[:3]) == ["0", "1", "2"] and sections.names[-1] == "24"  # natural order
    train, held = sections.split(5)
    assert list(held.names) == ["20", "21", "22", "23", "24"] and len(train) == 20
    assert len(read_test_images()) == 30


def test_reads_a_users_folder_of_pairs(tmp_path):
    sections = synthetic_sections(n=3, size=48, seed=1)
    for layout in ("plain", "isbi"):
        folder = write_pairs(sections, tmp_path / layout, layout=layout)
        back = read_sections(folder)
        np.testing.assert_array_equal(back.images, sections.images)
        np.testing.assert_array_equal(back.labels, sections.labels)


def test_a_folder_without_pairs_says_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match="image/ and label/"):
        read_sections(tmp_path)


def test_synthetic_sections_are_seeded():
    a, b, c = synthetic_sections(2, 64, seed=3), synthetic_sections(2, 64, seed=3), synthetic_sections(2, 64, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    membrane = a.labels == 0
    assert 0.05 < membrane.mean() < 0.5
    assert a.images[membrane].mean() < a.images[~membrane].mean() - 50  # membranes are dark, as in EM


# ---------------------------------------------------------------------------------------------- augmentation


def _blob_pair(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """An image that *is* its label: large bright blobs on black, so misalignment shows as disagreement."""
    yy, xx = np.mgrid[0:size, 0:size]
    label = (((yy - 30) ** 2 + (xx - 40) ** 2 < 20 ** 2) | ((xx > 60) & (yy > 50))).astype(np.uint8)
    return torch.from_numpy(label.astype(np.float32))[None, None], torch.from_numpy(label)[None]


@pytest.mark.parametrize("ops", [("elastic",), ("flip", "rotate"), ("elastic", "flip", "rotate")])
def test_augmentation_keeps_image_and_label_aligned(ops):
    image, label = _blob_pair()
    generator = torch.Generator().manual_seed(0)
    x, y = sample_tiles(image, label, batch=16, tile=64, ops=ops, generator=generator)
    assert x.shape == (16, 1, 64, 64) and y.shape == (16, 64, 64) and y.dtype == torch.int64
    agreement = ((x[:, 0] > 0.5).long() == y).float().mean()
    assert agreement > 0.98  # only interpolated edge pixels may differ
    # and the tiles really were transformed: they are not all the same plain crop
    assert len({tuple(t.flatten()[::97].tolist()) for t in y}) > 8


def test_brightness_changes_grey_values_but_not_labels():
    image, label = _blob_pair()
    x0, y0 = sample_tiles(image * 0.5 + 0.25, label, 8, 64, (), torch.Generator().manual_seed(1))
    x1, y1 = sample_tiles(image * 0.5 + 0.25, label, 8, 64, ("brightness",), torch.Generator().manual_seed(1))
    assert torch.equal(y0, y1)
    assert not torch.allclose(x0, x1)
    assert float(x1.min()) >= 0 and float(x1.max()) <= 1


def test_unknown_augmentation_is_a_user_error():
    image, label = _blob_pair()
    with pytest.raises(ConvzooError, match="elastic"):
        sample_tiles(image, label, 2, 32, ("wobble",), torch.Generator())


# ---------------------------------------------------------------------------------------------- metrics


def test_pixel_and_rand_error_on_a_crafted_case():
    truth = np.ones((10, 21), np.uint8)
    truth[:, 10] = 0  # two 10x10 cells split by a one-pixel membrane
    assert pixel_error(truth, truth) == 0 and rand_error(truth, truth)["rand_error"] == 0
    merged = np.ones_like(truth)  # the membrane missed: one region where there are two
    assert pixel_error(merged, truth) == pytest.approx(10 / 210)
    n = 100  # pixels per true cell; pairs: both true pairs kept together, n*n*2 wrongly merged
    p = (2 * n * n - 2 * n) / (4 * n * n - 2 * n)
    assert rand_error(merged, truth)["rand_error"] == pytest.approx(1 - 2 * p / (1 + p))
    assert dice(merged, truth) == 0.0 and dice(truth, truth) == 1.0


# ---------------------------------------------------------------------------------------------- tiling


def _conv_model(tmp_path, kernel: np.ndarray, pads: int, name: str) -> OnnxModel:
    node = helper.make_node("Conv", ["image", "w", "b"], ["mask_logits"], pads=[pads] * 4)
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        [helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["batch", 2, "h", "w"])],
        [numpy_helper.from_array(kernel.astype(np.float32), "w"),
         numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = dataclasses.replace(registry.get("unet-membranes"), name=name)
    stored = write_model(tmp_path, entry, model, metrics={}, manifest_extra={}, source={})
    return OnnxModel(stored.onnx_path)


def test_tiled_segmentation_equals_whole_image_for_a_pointwise_model(tmp_path):
    model = _conv_model(tmp_path, np.array([1.0, -1.0]).reshape(2, 1, 1, 1), 0, "pointwise")
    image = np.random.default_rng(0).integers(0, 256, (150, 97), dtype=np.uint8)
    tiled = segment_tiled(model, image, tile=64, overlap=16)
    whole = softmax(model.run(model.preprocess(image)), axis=1)[0]
    assert tiled.shape == (2, 150, 97)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_segmentation_with_a_valid_padding_model_reads_mirrored_context(tmp_path):
    kernel = np.random.default_rng(1).normal(size=(2, 1, 3, 3))
    model = _conv_model(tmp_path, kernel, 0, "valid3x3")  # output 2 px smaller than input, as the paper's U-Net
    image = np.random.default_rng(2).integers(0, 256, (70, 45), dtype=np.uint8)
    tiled = segment_tiled(model, image, tile=32, overlap=8)
    x = np.pad(model.preprocess(image), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="symmetric")
    expected = softmax(model.run(x), axis=1)[0]
    assert tiled.shape == (2, 70, 45)
    np.testing.assert_allclose(tiled, expected, atol=1e-5)


def test_evaluate_segmentation_reports_the_challenge_metrics(tiny_store):
    model = load_model("tiny-membranes", tiny_store)
    metrics = evaluate_segmentation(model, sections=[24], tile=256)
    assert metrics["sections"] == ["24"] and metrics["n"] == 1
    for key in ("pixel_error", "rand_error", "dice"):
        assert 0 <= metrics[key] <= 1
    assert metrics["published_unet_isbi"]["pixel_error"] == 0.0611


def test_segmentation_eval_imports_without_torch():
    import subprocess

    code = "import sys; sys.modules['torch'] = None; import convzoo.segmentation_eval, convzoo.data.membranes"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_smoke_writes_loadable_checkpoints_and_resumes(tmp_path):
    from convzoo.training.segmentation import train_segmentation

    data = write_pairs(synthetic_sections(n=5, size=64, seed=0), tmp_path / "pairs")
    entry = dataclasses.replace(registry.get("unet-membranes"), arch_args={"depth": 2, "width": 4, "padding": "same"})
    recipe = dataclasses.replace(entry.recipe, epochs=3, batch_size=2, val_split=2,
                                 options={**entry.recipe.options, "tile": 32, "steps_per_epoch": 2})
    best = train_segmentation(entry, recipe, data_dir=data, out_dir=tmp_path / "runs", device="cpu", max_steps=4)
    state = torch.load(best, map_location="cpu", weights_only=True)
    for key in ("model", "entry", "recipe", "epoch", "step", "metrics", "seconds", "device", "machine"):
        assert key in state
    assert state["entry"] == "unet-membranes" and 0 <= state["metrics"]["val_pixel_error"] <= 1
    from convzoo.models import build

    build(entry).load_state_dict(state["model"])
    last = torch.load(best.parent / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == 4
    train_segmentation(entry, recipe, data_dir=data, out_dir=tmp_path / "runs", device="cpu", resume=True)
    resumed = torch.load(best.parent / "last.pt", map_location="cpu", weights_only=True)
    assert resumed["step"] == 6 and resumed["epoch"] == 3  # continued, not restarted
