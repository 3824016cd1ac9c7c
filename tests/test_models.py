"""The classic classifiers: shapes, torchvision compatibility, gradient flow, ONNX-friendliness."""

from __future__ import annotations

import urllib.error

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from torch import nn

from convzoo import registry
from convzoo.errors import ConvzooError
from convzoo.models import architectures, build
from convzoo.models.googlenet import GoogLeNetOutputs
from convzoo.models.lenet import LeNet5, ScaledTanh
from convzoo.models.pretrained import load_pretrained
from convzoo.models.profile import count_macs, count_params

IMAGENET_ARCHS = ("alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "googlenet", "resnet18")
SMALL_ARCHS = tuple(f"{arch}_small" for arch in IMAGENET_ARCHS)
SMALL_SHAPES = ((2, 1, 28, 28), (2, 3, 32, 32))  # Fashion-MNIST / MNIST, CIFAR-10


def small_model(arch: str, channels: int = 1, **kwargs) -> nn.Module:
    kwargs = {"input_size": 28 if channels == 1 else 32, **kwargs} if arch == "lenet5" else kwargs
    return architectures()[arch](in_channels=channels, num_classes=10, **kwargs)


@pytest.mark.parametrize("name", registry.names(task="classification"))
def test_entry_builds_with_one_output_per_label(name):
    entry = registry.get(name)
    with torch.device("meta"):  # shapes only: the ImageNet models cost no compute this way
        model = build(entry).eval()
        out = model(torch.zeros(1, entry.in_channels, *entry.preprocess.size))
    assert tuple(out.shape) == (1, len(entry.labels))


@pytest.mark.parametrize("arch", (*SMALL_ARCHS, "lenet5"))
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=("28x28x1", "32x32x3"))
def test_small_variant_output_shape(arch, shape):
    torch.manual_seed(0)
    model = small_model(arch, channels=shape[1]).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert tuple(out.shape) == (shape[0], 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_small_variant_fits_a_10_mib_onnx_file(arch):
    # float32 weights dominate an ONNX file; issue #5 caps each shipped file at 10 MiB
    assert count_params(small_model(arch)) * 4 < 10 * 2**20 * 0.9


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_small_variant_width_scales_it(arch):
    assert count_params(small_model(arch, width=16)) < count_params(small_model(arch, width=24))


# ----------------------------------------------------------------------------------------------
# the ImageNet definitions against torchvision

TORCHVISION_KWARGS = {"googlenet": {"aux_logits": True, "transform_input": True, "init_weights": True}}
CONVZOO_KWARGS = {"googlenet": {"aux_logits": True, "transform_input": True}}


@pytest.mark.parametrize("arch", IMAGENET_ARCHS)
def test_imagenet_definition_is_torchvisions(arch):
    """Same parameter count, a torchvision state dict loads strictly, and the outputs agree."""
    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)(weights=None, **TORCHVISION_KWARGS.get(arch, {})).eval()
    with torch.device("meta"):  # no second random init of up to 138M weights: they are replaced below
        ours = architectures()[arch](**CONVZOO_KWARGS.get(arch, {})).eval()
    assert count_params(ours) == count_params(reference)
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert tuple(got.shape) == (1, 1000)
    torch.testing.assert_close(got, expected)
    if arch == "googlenet":  # the auxiliary heads too, in training, with the same dropout masks
        reference.train(), ours.train()
        x = torch.randn(2, 3, 112, 112)  # smaller: training-mode batch norm needs a batch
        with torch.no_grad():
            torch.manual_seed(1)
            expected = reference(x)
            torch.manual_seed(1)
            got = ours(x)
        assert isinstance(got, GoogLeNetOutputs)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)


def test_imagenet_macs_match_torchvision_meta():
    # torchvision publishes GMACs as "_ops"; ours are counted by FlopCounterMode on the meta device
    for arch in ("alexnet", "googlenet", "resnet18"):
        with torch.device("meta"):
            model = architectures()[arch]()
        ops = torchvision.models.get_model_weights(arch).IMAGENET1K_V1.meta["_ops"]
        assert count_macs(model, (1, 3, 224, 224)) / 1e9 == pytest.approx(ops, abs=1e-3)


# ----------------------------------------------------------------------------------------------
# torchvision weights from a local file

@pytest.fixture(scope="module")
def googlenet_weights(tmp_path_factory):
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path_factory.mktemp("weights") / "googlenet-1378be20.pth"
    torch.save(reference.state_dict(), path)
    reference.transform_input = True  # what torchvision does when it loads its ImageNet weights
    reference.aux_logits, reference.aux1, reference.aux2 = False, None, None
    return path, reference.eval()


def test_load_pretrained_from_file_behaves_like_torchvision(googlenet_weights):
    path, reference = googlenet_weights
    entry = registry.get("googlenet-imagenet")
    model = build(entry)  # no auxiliary heads: their weights in the file are skipped
    categories = load_pretrained(entry, str(path), model)
    assert categories == entry.labels
    assert model.transform_input
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x))


def test_load_pretrained_refuses_weights_of_another_model(tmp_path):
    path = tmp_path / "small.pth"
    state_dict = small_model("resnet18_small", channels=3).state_dict()
    torch.save({**state_dict, "head.weight": torch.zeros(1)}, path)
    entry = registry.get("resnet18-imagenet")
    with pytest.raises(ConvzooError, match=r"not for resnet18: 1 unexpected keys \(head.weight\); "
                                           r"102 keys of another shape \(bn1.bias: \(24,\), not \(64,\)"):
        load_pretrained(entry, str(path), build(entry))


def test_load_pretrained_says_what_is_missing(tmp_path):
    entry = registry.get("resnet18-imagenet")
    with pytest.raises(ConvzooError, match="no weights file at .*nowhere.pth"):
        load_pretrained(entry, str(tmp_path / "nowhere.pth"), nn.Linear(1, 1))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConvzooError, match="not a PyTorch state-dict file"):
        load_pretrained(entry, str(garbage), nn.Linear(1, 1))
    with pytest.raises(ConvzooError, match="no pretrained weights"):
        load_pretrained(registry.get("lenet5-fashion"), "torchvision", nn.Linear(1, 1))


def test_load_pretrained_offline_says_where_to_put_the_file(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", offline)
    entry = registry.get("resnet18-imagenet")
    with pytest.raises(ConvzooError, match=r"resnet18-f37072fd\.pth.*hub cache.*--weights FILE"):
        load_pretrained(entry, "torchvision", nn.Linear(1, 1))


# ----------------------------------------------------------------------------------------------
# training and export friendliness of the small variants

@pytest.mark.parametrize("arch, kwargs", [
    *((arch, {}) for arch in SMALL_ARCHS),
    ("googlenet_small", {"aux_logits": True}),
    ("lenet5", {}),
    ("lenet5", {"activation": "tanh", "pooling": "avg"}),
], ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())) or "default")
def test_one_optimiser_step_changes_every_trainable_tensor(arch, kwargs):
    torch.manual_seed(0)
    model = small_model(arch, **kwargs).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # no weight decay: only gradients move weights
    out = model(torch.randn(10, 1, 28, 28))
    targets = torch.arange(10)  # every class, so every output unit gets a gradient
    outputs = out if isinstance(out, tuple) else (out,)
    loss = sum(nn.functional.cross_entropy(o, targets) for o in outputs)
    loss.backward()
    optimizer.step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged


@pytest.mark.filterwarnings("ignore:Constant folding")
@pytest.mark.parametrize("arch", ("lenet5", *SMALL_ARCHS))
def test_small_variant_exports_to_onnx_and_matches(arch, tmp_path):
    torch.manual_seed(0)
    model = small_model(arch).eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.randn(2, 1, 28, 28),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    x = torch.randn(5, 1, 28, 28)  # another batch size than at export: the axis is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert path.stat().st_size < 10 * 2**20


# ----------------------------------------------------------------------------------------------
# LeNet-5 as the paper draws it

def test_lenet_pads_28x28_to_the_papers_32x32_so_c5_is_1x1():
    model = LeNet5()
    seen = {}
    model.features[1].register_forward_pre_hook(lambda m, args: seen.update(c1_in=args[0].shape))
    features = model.features(torch.randn(3, 1, 28, 28))
    assert tuple(seen["c1_in"]) == (3, 1, 32, 32)
    assert tuple(features.shape) == (3, 120, 1, 1)


def test_lenet_papers_scaled_tanh_and_average_subsampling():
    model = LeNet5(activation="tanh", pooling="avg")
    kinds = {type(m) for m in model.modules()}
    assert {ScaledTanh, nn.AvgPool2d} <= kinds and not kinds & {nn.ReLU, nn.MaxPool2d}
    squash = ScaledTanh()(torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(squash, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4, rtol=0)  # f(+-1) = +-1
    assert count_params(model) == count_params(LeNet5())  # the options change no weights
    assert tuple(model(torch.randn(2, 1, 28, 28)).shape) == (2, 10)


def test_lenet_refuses_unknown_options():
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="sigmoid")
    with pytest.raises(ValueError, match="pooling"):
        LeNet5(pooling="median")
