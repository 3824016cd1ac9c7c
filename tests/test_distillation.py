"""Distillation from a stored teacher and runs that start from a stored file's weights (issue 26's recipes):
the loss, the refusals, the exactness of weights read back from ONNX files (by name, and through batch norms
folded into convolutions), exact resume with both, and what the card says. Small real slices, a few steps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from convzoo import registry
from convzoo.card import render_card
from convzoo.data.fashion_mnist import ClassificationData, load_fashion_mnist
from convzoo.data.transforms import normalize
from convzoo.errors import ConvzooError, EntryError
from convzoo.models import build
from convzoo.training import checkpoints, teacher, warm_start
from convzoo.training.distributed import Context
from convzoo.training.loop import ClassifierSteps, fit
from convzoo.types import training_options

LENET = registry.get("lenet5-fashion")
TEACHER = "resnet18-fashion"


@pytest.fixture(scope="module")
def small(fashion_dir) -> ClassificationData:
    return load_fashion_mnist(fashion_dir, val_split=5000).head(train=384, val=128, test=256)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def onnx_logits(stored, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(stored.onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def torch_logits(model: torch.nn.Module, stored, x: torch.Tensor) -> np.ndarray:
    """What the file computes: one pass, or the mean over the image and its mirror where the file folds that in."""
    model.eval()
    with torch.no_grad():
        out = model(x)
        if training_options("classification", stored.entry.recipe.options).mirror_average:
            out = (out + model(x.flip(-1))) / 2
    return out.numpy()


def test_distillation_loss_is_cross_entropy_at_weight_zero_and_zero_when_student_is_teacher():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 10, generator=g), torch.randint(0, 10, (16,), generator=g)
    ce = F.cross_entropy(logits, labels, label_smoothing=0.1)
    other = torch.randn(16, 10, generator=g)
    assert teacher.distillation_loss(logits, other, labels, smoothing=0.1, weight=0.0, temperature=4.0) == \
        pytest.approx(ce.item())
    assert teacher.distillation_loss(logits, logits, labels, smoothing=0.1, weight=1.0, temperature=4.0) == \
        pytest.approx(0.0, abs=1e-6)
    assert teacher.distillation_loss(logits, other, labels, smoothing=0.1, weight=1.0, temperature=4.0) > 0.01


def test_the_student_moves_toward_the_teacher():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(32, 10, generator=g, requires_grad=True)
    target = torch.randn(32, 10, generator=g) * 3
    before = F.kl_div(F.log_softmax(student, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean")
    loss = teacher.distillation_loss(student, target, target.argmax(1), smoothing=0.0, weight=1.0, temperature=2.0)
    loss.backward()
    moved = (student - 0.5 * student.grad).detach()
    after = F.kl_div(F.log_softmax(moved, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean")
    assert after < before


@pytest.mark.parametrize(("options", "words"), [({"distill_weight": 1.5}, "distill_weight"),
                                                ({"distill_temperature": 0.0}, "distill_temperature"),
                                                ({"distill_temperature": float("nan")}, "distill_temperature"),
                                                ({"teacher": 3}, "teacher")])
def test_bad_distillation_options_are_refused_with_their_name(options, words):
    with pytest.raises(EntryError, match=words):
        training_options("classification", options)


def test_a_teacher_must_be_stored_and_classify_the_same_labels():
    with pytest.raises(ConvzooError, match="not in the store"):
        teacher.stored_teacher("vgg11-fashion", LENET)
    with pytest.raises(ConvzooError, match="does not classify"):
        teacher.stored_teacher("unet-membranes", LENET)


def test_the_teachers_logits_are_its_files_answers(small):
    stored = teacher.stored_teacher(TEACHER, LENET)
    images = small.test_images[:40]
    logits = teacher.teacher_logits(stored, images, threads=1)
    assert logits.shape == (40, 10) and logits.dtype == torch.float32
    expected = onnx_logits(stored, normalize(images, stored.entry.preprocess))
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == small.test_labels[:40]).float().mean() > 0.8


def test_a_run_starts_only_from_its_own_architecture():
    with pytest.raises(ConvzooError, match="only start from a file of its own architecture"):
        warm_start.stored_start(TEACHER, LENET)
    with pytest.raises(ConvzooError, match="not in the store"):
        warm_start.stored_start("vgg11-fashion", registry.get("vgg11-fashion"))


@pytest.mark.parametrize(("name", "how"), [("vgg16-fashion", "by name"),
                                           ("googlenet-fashion", "batch norms rebuilt")])
def test_weights_read_back_from_the_file_compute_what_it_computes(small, name, how):
    """VGG's names survive export; GoogLeNet's batch norms are folded into its convolutions and rebuilt."""
    stored = registry.Store().get(name)
    model = build(stored.entry)
    calibration = normalize(small.train_images[:256], stored.entry.preprocess)
    assert how in warm_start.load_onnx_weights(model, str(stored.onnx_path), calibration)
    x = normalize(small.test_images[:32], stored.entry.preprocess)
    np.testing.assert_allclose(torch_logits(model, stored, x), onnx_logits(stored, x), rtol=1e-3, atol=2e-3)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:  # rebuilt to normalise: the training-mode pass is close to the evaluation one on real images
        model.train()
        with torch.no_grad():
            out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        agree = (out.argmax(1).numpy() == onnx_logits(stored, x).argmax(1)).mean()
        assert agree >= 0.8


def test_a_file_of_another_shape_is_refused(small):
    other = registry.Store().get("lenet5-fashion")
    model = build(registry.get("googlenet-fashion"))
    with pytest.raises(ConvzooError, match="not a file of this architecture"):
        warm_start.load_onnx_weights(model, str(other.onnx_path), normalize(small.train_images[:8], LENET.preprocess))


def distilled(**changes):
    options = {"teacher": TEACHER, "init_from": "lenet5-fashion", "mirror_average": True}
    return dataclasses.replace(LENET.recipe, epochs=2, batch_size=64, lr=1e-3, options=options, **changes)


def test_a_distilled_warm_started_run_resumes_exactly_and_records_both_files(small, tmp_path):
    straight = fit(LENET, distilled(), small, out_dir=tmp_path / "straight", device="cpu", max_steps=8)
    fit(LENET, distilled(), small, out_dir=tmp_path / "split", device="cpu", max_steps=3)
    resumed = fit(LENET, distilled(), small, out_dir=tmp_path / "split", device="cpu", max_steps=8, resume=True)
    a, b = (checkpoints.load(p.parent / "last.pt") for p in (straight, resumed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["data"]["teacher"]["name"] == TEACHER and a["data"]["init_from"]["name"] == "lenet5-fashion"
    assert a["data"]["teacher"]["sha256"] == registry.Store().get(TEACHER).sha256
    # it started from the file: after a few small steps it still scores near the file, far above chance
    assert json.loads((straight.parent / "metrics.json").read_text())[-1]["test_accuracy"] > 0.7


def test_the_card_names_the_teacher_and_its_loss():
    stored = registry.Store().get("lenet5-fashion")
    entry = dataclasses.replace(stored.entry, recipe=distilled())
    manifest = dict(stored.manifest)
    manifest["entry"] = entry.to_json()
    manifest["training"] = {**manifest.get("training", {}), "recipe": distilled().to_json(),
                            "teacher": {"name": TEACHER, "sha256": "ab" * 32, "test_accuracy": 0.9505},
                            "init_from": {"name": "lenet5-fashion", "sha256": "cd" * 32, "test_accuracy": 0.9144,
                                          "seconds": 90.0, "device": "cuda:0"}}
    card = render_card(dataclasses.replace(stored, manifest=manifest))
    assert ("Started from the weights of the earlier `lenet5-fashion` (sha256 `cdcdcdcdcdcd...`, test accuracy "
            "0.9144, trained 1.5 min on cuda:0), read back") in card
    assert f"Distilled from `{TEACHER}` (sha256 `abababababab...`, test accuracy 0.9505)" in card
    assert "0.1 x cross-entropy with the labels + 0.9 x T^2 x KL" in card and "T = 4" in card


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan")])
def test_a_dropout_rate_outside_0_to_1_is_refused_with_its_name(rate):
    with pytest.raises(EntryError, match="dropout"):
        training_options("classification", {"dropout": rate})


@pytest.mark.parametrize(("options", "expected"), [({}, 0.5), ({"dropout": 0.1}, 0.1)])
def test_the_recipes_dropout_rate_is_every_dropout_layers_while_training(small, options, expected):
    entry = registry.get("vgg16-fashion")
    model = build(entry)
    recipe = dataclasses.replace(entry.recipe, options=options)
    ClassifierSteps(entry, recipe, small, Context(0, 1, torch.device("cpu"), owns_group=False), model)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(rates) == 2 and set(rates) == {expected}


def test_the_card_follows_a_chain_of_continuations_and_adds_their_times():
    stored = registry.Store().get("lenet5-fashion")
    manifest = dict(stored.manifest)
    gpu = {"name": "lenet5-fashion", "sha256": "ef" * 32, "test_accuracy": 0.90, "seconds": 120.0, "device": "cuda:0"}
    cpu = {"name": "lenet5-fashion", "sha256": "cd" * 32, "test_accuracy": 0.91, "seconds": 600.0, "device": "cpu",
           "init_from": gpu}
    manifest["training"] = {"recipe": {**LENET.recipe.to_json(), "options": {"dropout": 0.1}}, "seconds": 180.0,
                            "init_from": cpu}
    card = render_card(dataclasses.replace(stored, manifest=manifest))
    assert ("earlier `lenet5-fashion` (sha256 `cdcdcdcdcdcd...`, test accuracy 0.9100, trained 10.0 min on cpu), "
            "itself continued from the earlier `lenet5-fashion` (sha256 `efefefefefef...`, test accuracy 0.9000, "
            "trained 2.0 min on cuda:0)") in card
    assert "all 3 runs together: 15.0 min" in card  # 2 + 10 + 3 minutes
    assert "Dropout while training: 0.1 in every dropout layer" in card
