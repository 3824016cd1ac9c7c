"""Style training: the offline loss network, centred Gram matrices, content crops, and a smoke run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convzoo import registry
from convzoo.data.images import CropSampler, content_photos
from convzoo.training.style import PerceptualLoss, RandomVGG, gram, load_style, loss_network

torch.set_num_threads(1)


def test_centred_gram_is_the_covariance_and_differs_from_the_plain_gram():
    features = torch.randn(1, 4, 6, 5) + torch.tensor([3.0, -1.0, 0.5, 2.0]).view(1, 4, 1, 1)
    centred, plain = gram(features, centred=True)[0], gram(features, centred=False)[0]
    flat = features[0].reshape(4, -1).numpy()
    np.testing.assert_allclose(centred.numpy(), np.cov(flat, bias=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plain.numpy(), flat @ flat.T / flat.shape[1], rtol=1e-4, atol=1e-5)
    assert (plain - centred).abs().max() > 1.0  # the means dominate the plain Gram


def test_random_vgg_is_the_issues_network_seeded_and_frozen():
    a, b, c = RandomVGG(seed=0), RandomVGG(seed=0), RandomVGG(seed=1)
    convs = [m for m in a.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in a.modules()) == len(convs)  # reflect, never zeros
    assert all(conv.padding == (0, 0) for conv in convs)
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in a.modules()) == 4  # between the 5 blocks
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in a.modules())
    assert not any(p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(convs[0].weight, next(c.parameters()))
    features = a(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]


def test_the_offline_default_is_random_vgg_without_local_weights(monkeypatch):
    monkeypatch.setattr("convzoo.training.style.hub_vgg16", lambda: None)
    assert isinstance(loss_network({"loss_network": "auto"}), RandomVGG)
    with pytest.raises(Exception, match="VGG-16 weights"):
        loss_network({"loss_network": "vgg16"})


def test_style_loss_uses_centred_grams_of_every_block():
    style = load_style("starry_night.jpg", 48)
    criterion = PerceptualLoss(RandomVGG(seed=0), style, 1.0, 5.0)
    features = criterion.features(style)
    assert len(criterion.style_grams) == 5
    for f, target in zip(features, criterion.style_grams):
        torch.testing.assert_close(target, gram(f, centred=True))
        assert not torch.allclose(target, gram(f, centred=False))
    assert float(criterion.style_loss(features)) < 1e-6  # the painting matches itself
    photo = torch.rand(1, 3, 48, 48) * 255
    losses = criterion(photo, photo)
    assert float(losses["content"]) == 0 and float(losses["style"]) > 0.05


def test_content_photos_hold_some_out_and_crops_are_pixels():
    train, held = content_photos()
    assert len(train) >= 5 and set(held) == {"chelsea", "coffee"} and not set(train) & set(held)
    sampler = CropSampler(train, 32, "cpu")
    a = sampler.sample(6, torch.Generator().manual_seed(0))
    b = sampler.sample(6, torch.Generator().manual_seed(0))
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 255 and float(a.std()) > 10  # real photo content


@pytest.mark.slow
def test_training_smoke_writes_loadable_checkpoints(tmp_path):
    from convzoo.models import build
    from convzoo.training.style import train_style

    entry = dataclasses.replace(registry.get("style-great-wave"), arch_args={"widths": [4, 8, 8], "blocks": 1})
    recipe = dataclasses.replace(entry.recipe, batch_size=2, options={
        **entry.recipe.options, "image_size": 32, "style_size": 64, "steps": 4, "log_every": 2, "checkpoint_every": 2,
        "loss_network": "random-vgg"})
    best = train_style(entry, recipe, out_dir=tmp_path, device="cpu", max_steps=2)
    state = torch.load(best, map_location="cpu", weights_only=True)
    for key in ("model", "entry", "recipe", "epoch", "step", "metrics", "seconds", "device", "machine"):
        assert key in state
    assert state["step"] == 2 and state["metrics"]["loss_network"] == "random-vgg"
    build(entry).load_state_dict(state["model"])
    assert (best.parent / "preview.png").is_file()
    train_style(entry, recipe, out_dir=tmp_path, device="cpu", resume=True)
    assert torch.load(best.parent / "last.pt", weights_only=True)["step"] == 4
