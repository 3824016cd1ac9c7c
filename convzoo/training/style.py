"""Training fast style networks (Johnson et al. 2016): ``convzoo train style-starry-night``.

A TransformerNet learns to paint photos like one painting by minimising a perceptual loss: the
distance of its output's features, in a frozen loss network, to the photo's (content) and to the
painting's feature statistics (style).

The loss network. Johnson et al. use ImageNet-trained VGG-16; its weights are used when they
are on this machine (``recipe.options["loss_weights"]``: a state-dict file of torchvision's
``vgg16``, or torchvision's download in the torch hub cache). Without them -- the offline
default -- a randomly initialised VGG-like network does the job: 5 blocks of two 3x3 convs
(64-128-256-512-512), reflection padding, Kaiming initialisation from a fixed seed, average
pooling between blocks, frozen. Random features carry texture statistics as long as the Gram
matrices are *centred* (covariances: the raw Gram of random ReLU features is dominated by their
means, which says little about the painting), with the feature means matched separately; each
term is normalised by the style's own value, so no layer dominates.

Recipe options: ``style_image`` (file in convzoo/assets/styles or a path), ``image_size`` (crop
side), ``style_size`` (the painting's longer side), ``steps``, ``content_weight``, ``style_weight``,
``tv_weight``, ``loss_network`` (``auto``: VGG-16 when its weights are here, else ``random-vgg``;
or either by name), ``loss_weights`` (VGG-16 state-dict file), ``loss_seed``.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from convzoo.data.images import CropSampler, content_photos
from convzoo.errors import ConvzooError, DataNotFoundError
from convzoo.registry import atomic_write_bytes
from convzoo.types import ModelEntry, Recipe, StyleOptions, training_options
from convzoo.training import RUNS, skeleton
from convzoo.training import fit as one_loop
from convzoo.training.distributed import resolve_device

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "styles"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1 in the hub cache
VGG16_STYLE_LAYERS = (3, 8, 15, 22)  # relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al.)
CONTENT_BLOCK = 1  # block 2 (relu2_2 in VGG-16)


class RandomVGG(nn.Module):
    """The offline loss network: VGG-like, randomly initialised from a fixed seed, frozen."""

    name = "random-vgg"
    centred = True

    def __init__(self, seed: int = 0, widths: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        blocks, cin = [], 3
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [nn.AvgPool2d(2)] if i else []
            for c in (cin, width):
                conv = nn.Conv2d(c, width, 3)
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(conv.bias)
                layers += [nn.ReflectionPad2d(1), conv, nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers))
            cin = width
        self.blocks = nn.ModuleList(blocks)
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class VGG16Features(nn.Module):
    """torchvision's ImageNet VGG-16 up to relu4_3, giving Johnson et al.'s four style layers."""

    name = "vgg16-imagenet"
    centred = False  # Johnson et al.'s plain Gram matrices on trained features

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torchvision.models import vgg16

        model = vgg16()
        model.load_state_dict(state_dict)
        self.features = model.features[: VGG16_STYLE_LAYERS[-1] + 1]
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_STYLE_LAYERS:
                features.append(x)
        return features


def hub_vgg16() -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    return path if path.is_file() else None


def loss_network(options: Mapping[str, Any] | StyleOptions) -> nn.Module:
    """The frozen loss network the recipe asks for (see the module docstring)."""
    if not isinstance(options, StyleOptions):
        options = training_options("style", options)
    kind = options.loss_network
    weights = options.loss_weights or (hub_vgg16() if kind in ("auto", "vgg16") else None)
    if kind == "vgg16" and not weights:
        raise DataNotFoundError(f"loss_network vgg16 needs ImageNet VGG-16 weights: pass --loss-weights FILE "
                                f"(torchvision's vgg16 state dict) or put {VGG16_FILE} in "
                                f"{torch.hub.get_dir()}/checkpoints")
    if weights and kind != "random-vgg":
        path = Path(weights)
        if not path.is_file():
            raise DataNotFoundError(f"loss weights {path} not found")
        return VGG16Features(torch.load(path, map_location="cpu", weights_only=True))
    if kind not in ("auto", "random-vgg"):
        raise ConvzooError(f"loss_network {kind!r}: use auto, vgg16 or random-vgg")
    return RandomVGG(seed=options.loss_seed)


def gram(features: torch.Tensor, centred: bool = True) -> torch.Tensor:
    """B x C x C feature (co)variances over positions; ``centred`` subtracts each channel's mean first."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):  # sums of many products: fp32, never bf16
        f = features.float().reshape(b, c, h * w)
        if centred:
            f = f - f.mean(dim=-1, keepdim=True)
        return f @ f.transpose(1, 2) / (h * w)


class PerceptualLoss(nn.Module):
    """Content + style (+ total variation) loss against one painting, each term relative to its target."""

    def __init__(self, network: nn.Module, style: torch.Tensor, content_weight: float, style_weight: float,
                 tv_weight: float = 0.0) -> None:
        super().__init__()
        self.network = network
        self.centred = bool(getattr(network, "centred", True))
        self.weights = (content_weight, style_weight, tv_weight)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, device=style.device).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, device=style.device).view(1, 3, 1, 1) * 255)
        with torch.no_grad():  # the painting's statistics, once (network and style on the same device)
            targets = self.features(style)
            self.style_grams = [gram(f, self.centred) for f in targets]
            self.style_means = [f.float().mean(dim=(2, 3)) for f in targets]

    def features(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return self.network((pixels - self.mean) / self.std)

    def style_loss(self, features: list[torch.Tensor]) -> torch.Tensor:
        total = features[0].new_zeros((), dtype=torch.float32)
        for f, g_style, m_style in zip(features, self.style_grams, self.style_means):
            g = gram(f, self.centred)
            m = f.float().mean(dim=(2, 3))
            total = total + ((g - g_style) ** 2).sum(dim=(1, 2)).mean() / (g_style ** 2).sum().clamp(min=1e-12)
            total = total + ((m - m_style) ** 2).sum(dim=1).mean() / (m_style ** 2).sum().clamp(min=1e-12)
        return total / len(features)

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.features(content)[CONTENT_BLOCK].float()
        features = self.features(output)
        f = features[CONTENT_BLOCK].float()
        content_loss = ((f - target) ** 2).mean() / (target ** 2).mean().clamp(min=1e-12)
        style_loss = self.style_loss(features)
        tv = ((output[..., 1:, :] - output[..., :-1, :]).abs().mean()
              + (output[..., :, 1:] - output[..., :, :-1]).abs().mean()) / 255
        wc, ws, wt = self.weights
        return {"loss": wc * content_loss + ws * style_loss + wt * tv, "content": content_loss,
                "style": style_loss, "tv": tv}


def style_path(name: str | Path) -> Path:
    path = Path(name)
    for candidate in (path, ASSETS / path):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(f"style image {name!r} not found (looked in . and {ASSETS})")


def load_style(name: str | Path, longer_side: int) -> torch.Tensor:
    """1 x 3 x H x W float pixels: the painting with its longer side resized to ``longer_side``."""
    with Image.open(style_path(name)) as image:
        image = image.convert("RGB")
        factor = longer_side / max(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float()


def preview(model: nn.Module, photos: dict[str, np.ndarray], style: torch.Tensor, path: Path, device,
            side: int = 256) -> None:
    """A PNG strip per held-out photo: photo, painting, result (to look at, as the issue asks)."""
    def fit(image: Image.Image) -> Image.Image:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (side, side), "white")
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        return canvas

    painting = fit(Image.fromarray(style[0].permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy()))
    rows = []
    model.eval()
    with torch.no_grad():
        for pixels in photos.values():
            photo = fit(Image.fromarray(pixels))
            x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)[None].float().to(device)
            y = model(x)[0].permute(1, 2, 0).float().clamp(0, 255).round().byte().cpu().numpy()
            rows.append([photo, painting, Image.fromarray(y)])
    model.train()
    sheet = Image.new("RGB", (3 * side, side * max(1, len(rows))), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            sheet.paste(image, (c * side, r * side))
    import io

    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def train_style(entry: ModelEntry, recipe: Recipe, *, data_dir: str | Path | None = None,
                out_dir: str | Path = RUNS, device: str = "auto", resume: bool = False,
                max_steps: int | None = None, download: bool = False) -> Path:
    """Train a style network in the one loop; returns ``out_dir/NAME/best.pt`` (the latest weights: there is
    no validation metric to choose by). ``data_dir``: a folder of content photos (default: the bundled ones); ``download`` is
    accepted as every task's train hook takes it (the photos are bundled)."""
    opts = skeleton.options(entry, recipe)
    if not opts.style_image:
        raise ConvzooError(f"{entry.name}: its recipe names no style_image")
    resolve_device(device)  # a bad --device is reported before any work
    train_photos, held_photos = content_photos(data_dir)
    return one_loop.fit(entry, recipe, lambda context, model: StyleSteps(entry, recipe, opts, train_photos, held_photos,
                                                                  context),
                        out_dir=out_dir, device=device, resume=resume, max_steps=max_steps)


class StyleSteps:
    """A style net's part of the loop: random content crops, the perceptual loss; an "epoch" is one
    ``log_every`` window of steps (a metrics row and a last.pt each); no validation, so ``best.pt`` is
    the latest weights; a preview sheet of held-out photos at the end."""

    warmup = 0.25
    warmup_steps = 0
    plot = False
    channels_last = False  # not measured on the CPU for these networks: the default layout stays

    def __init__(self, entry: ModelEntry, recipe: Recipe, opts: StyleOptions, train_photos: Any, held_photos: Any,
                 context: Any) -> None:
        dev = context.device
        self.entry, self.held_photos, self.device, self.photos = entry, held_photos, dev, len(train_photos)
        self.batch_size = one_loop.per_process(recipe.batch_size, context)
        self.total = opts.steps * max(1, recipe.epochs)
        self.window = max(1, opts.log_every)
        self.epochs = -(-self.total // self.window)
        self.checkpoint_every = max(1, opts.checkpoint_every or 500)
        self.sampler = CropSampler(train_photos, opts.image_size, dev)
        self.style = load_style(opts.style_image, opts.style_size).to(dev)
        memory = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
        self.network = loss_network(opts).to(dev).to(memory_format=memory)
        self.criterion = PerceptualLoss(self.network, self.style, opts.content_weight, opts.style_weight,
                                        opts.tv_weight)

    def steps_in(self, epoch: int) -> int:
        return min(self.window, self.total - epoch * self.window)

    def batch(self, epoch: int, index: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
        return self.sampler.sample(self.batch_size, generator), None

    def loss(self, model: nn.Module, x: torch.Tensor, y: None) -> tuple[torch.Tensor, torch.Tensor]:
        losses = self.criterion(model(x), x)
        return losses["loss"], torch.stack([losses["loss"].detach(), losses["content"].detach(),
                                            losses["style"].detach(), torch.ones((), device=x.device)]).double()

    def train_metrics(self, stats: list[float]) -> dict[str, Any]:
        loss, content, style, count = stats or (0.0, 0.0, 0.0, 0.0)
        count = max(count, 1)
        return {"loss": loss / count, "content_loss": content / count, "style_loss": style / count,
                "loss_network": self.network.name}

    def validate(self, model: nn.Module) -> dict[str, Any]:
        return {}

    def start(self, model: nn.Module) -> None:
        return None

    def on_best(self, model: nn.Module, row: dict[str, Any]) -> None:
        return None

    def summary(self, row: dict[str, Any]) -> str:
        return (f"step {row['step']}: loss {row['loss']:.3f} content {row['content_loss']:.3f} "
                f"style {row['style_loss']:.3f} | {row['images_per_second']:.1f} img/s")

    def finish(self, model: nn.Module, run_dir: Path) -> None:
        if self.held_photos:
            preview(model, self.held_photos, self.style, run_dir / "preview.png", self.device)

    def describe(self) -> Any:
        return {"dataset": self.entry.dataset, "photos": self.photos}
