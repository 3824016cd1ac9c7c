"""U-Net and TransformerNet: shapes for every padding, depth and size; output range; ONNX at any size."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from convzoo import registry
from convzoo.models import build
from convzoo.models.style import TransformerNet
from convzoo.models.unet import UNet

torch.set_num_threads(1)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(32, 32), (48, 80)])
def test_unet_same_padding_keeps_the_size(depth, size):
    height, width = size  # multiples of 16, so of 2**depth
    model = UNet(1, 2, depth=depth, width=4, padding="same").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, height, width))
    assert out.shape == (2, 2, height, width)
    assert model.size_multiple == 2 ** depth


def test_unet_valid_padding_is_the_papers_572_to_388():
    model = UNet(1, 2, depth=4, width=2, padding="valid", batch_norm=False).eval()
    assert model.output_size(572) == 388
    with torch.no_grad():
        assert model(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_unet_valid_padding_sizes_match_the_formula(depth):
    model = UNet(1, 3, depth=depth, width=2, padding="valid").eval()
    side = model.valid_input_size(60)
    with torch.no_grad():
        out = model(torch.randn(1, 1, side, side))
    assert out.shape[-1] == model.output_size(side) < side
    assert out.shape[1] == 3


def test_unet_refuses_sizes_it_cannot_take():
    with pytest.raises(ValueError):
        UNet(depth=4, width=2, padding="same").output_size(100)  # not a multiple of 16
    with pytest.raises(ValueError):
        UNet(depth=4, width=2, padding="valid").output_size(570)  # odd side at some pooling
    with pytest.raises(ValueError):
        UNet(padding="full")


def test_unet_paper_configuration_has_the_papers_layer_widths():
    model = UNet(1, 2, depth=4, width=64, padding="valid", batch_norm=False)
    assert [block[0].out_channels for block in model.down] == [64, 128, 256, 512]
    assert model.bottom[0].out_channels == 1024
    assert model.head.out_channels == 2


def test_zoo_unet_builds_from_its_entry():
    entry = registry.get("unet-membranes")
    model = build(entry).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, len(entry.labels), 64, 64)


def test_one_step_changes_every_trainable_tensor():
    for model, x in ((UNet(1, 2, depth=2, width=4), torch.randn(2, 1, 32, 32)),
                     (TransformerNet((4, 8, 8), blocks=1), torch.rand(2, 3, 32, 32) * 255)):
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model(x).float().pow(2).mean().backward()
        optimizer.step()
        unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
        assert not unchanged, unchanged


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (64, 48), (101, 75)])
def test_transformer_net_any_size_and_pixel_range(size):
    model = TransformerNet((4, 8, 16), blocks=2).eval()
    x = torch.rand(2, 3, *size) * 255
    with torch.no_grad():
        y = model(x)
        extreme = model(torch.full((1, 3, *size), 1e4))  # out-of-range input still gives pixels
    assert y.shape == x.shape
    assert 0 <= float(y.min()) and float(y.max()) <= 255
    assert 0 <= float(extreme.min()) and float(extreme.max()) <= 255


def test_zoo_style_entries_build_with_their_widths():
    entry = registry.get("style-starry-night")
    model = build(entry)
    assert model.conv1[1].out_channels == entry.arch_args["widths"][0]
    assert len(model.residual) == entry.arch_args["blocks"]


def test_transformer_net_onnx_runs_at_any_size_and_matches_torch():
    import onnxruntime as ort

    model = TransformerNet((4, 8, 8), blocks=1).eval()
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, 64, 64) * 255,), buffer, input_names=["image"],
                          output_names=["image_out"], dynamic_axes={"image": axes, "image_out": axes},
                          opset_version=17, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for size in ((64, 64), (37, 90)):
        x = (np.random.default_rng(0).random((1, 3, *size)) * 255).astype(np.float32)
        out = session.run(None, {"image": x})[0]
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert out.shape == x.shape
        np.testing.assert_allclose(out, expected, atol=0.05)  # pixels 0..255
