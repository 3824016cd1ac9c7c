"""Content photos for style training: the colour photos that ship inside installed Python packages.

scikit-image's data folder, scikit-learn's ``load_sample_images`` (when installed) and
matplotlib's sample data hold a handful of real colour photographs -- enough, with random crops
at random scales and flips, for a style network to learn its painting (the fast-style papers
used COCO; these need no download). A user can pass a folder of their own photos instead. A
few photos are held out: they show what the trained network does on photos it never saw.

Reading is numpy/Pillow only; ``CropSampler`` (torch) makes the random crops on the training device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from convzoo.errors import DataNotFoundError

SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "motorcycle_right.png", "hubble_deep_field.jpg")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
HELD_OUT = ("chelsea", "coffee")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def bundled_photos() -> dict[str, np.ndarray]:
    """name -> uint8 H x W x 3, from the packages that are installed (no download)."""
    photos: dict[str, np.ndarray] = {}
    try:
        import skimage.data

        folder = Path(skimage.data.__file__).parent
        photos |= {Path(n).stem: _read(folder / n) for n in SKIMAGE_PHOTOS if (folder / n).is_file()}
    except ImportError:
        pass
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
        photos |= {Path(n).stem: _read(folder / n) for n in MATPLOTLIB_PHOTOS if (folder / n).is_file()}
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        photos |= {Path(n).stem: np.asarray(im) for n, im in zip(bunch.filenames, bunch.images)}
    except ImportError:
        pass
    return photos


def folder_photos(folder: str | Path) -> dict[str, np.ndarray]:
    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
    if not paths:
        raise DataNotFoundError(f"no photos (.png, .jpg, ...) in {folder}; pass a folder of content photos, "
                                f"or no --data-dir to use the photos bundled with scikit-image and matplotlib")
    return {p.stem: _read(p) for p in paths}


def content_photos(data_dir: str | Path | None = None, held_out: tuple[str, ...] = HELD_OUT
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training photos, held-out photos). With ``data_dir``, its photos; the held-out names still apply."""
    photos = folder_photos(data_dir) if data_dir else bundled_photos()
    if not photos:
        raise DataNotFoundError("no content photos: install scikit-image (`pip install convzoo[train]`) "
                                "or pass --data-dir with a folder of photos")
    train = {k: v for k, v in photos.items() if k not in held_out}
    held = {k: v for k, v in photos.items() if k in held_out}
    if not train:  # a user folder of only "held-out" names: train on them rather than on nothing
        train = held
    return train, held


class CropSampler:
    """Random square crops (random scale, position and mirror) of photos of mixed sizes, on a device.

    The photos are resized once so their shorter side is 1.5x the crop size (so no crop is shrunk
    by more than 1.5x: little aliasing), padded into one tensor, and each batch is a single
    ``grid_sample``: no Python work per image and no host synchronisation.
    """

    def __init__(self, photos: dict[str, np.ndarray], size: int, device, min_scale: float = 0.5) -> None:
        import torch

        self.size, self.min_scale = size, min_scale
        resized = []
        for pixels in photos.values():
            image = Image.fromarray(pixels)
            factor = 1.5 * size / min(image.size)
            image = image.resize((max(size, round(image.width * factor)), max(size, round(image.height * factor))),
                                 Image.Resampling.LANCZOS)
            resized.append(np.asarray(image))
        height, width = max(p.shape[0] for p in resized), max(p.shape[1] for p in resized)
        stack = np.zeros((len(resized), 3, height, width), np.uint8)
        for i, p in enumerate(resized):
            stack[i, :, :p.shape[0], :p.shape[1]] = p.transpose(2, 0, 1)
        self.stack = torch.from_numpy(stack).to(device).float()
        self.shapes = torch.tensor([p.shape[:2] for p in resized], device=device, dtype=torch.float32)  # (h, w)
        self.device = device

    def sample(self, batch: int, generator) -> "torch.Tensor":
        """B x 3 x size x size float pixels in 0..255."""
        import torch
        import torch.nn.functional as F

        dev = self.device
        index = torch.randint(0, len(self.stack), (batch,), generator=generator, device=dev)
        h, w = self.shapes[index, 0], self.shapes[index, 1]
        short = torch.minimum(h, w)
        side = short * (self.min_scale + (1 - self.min_scale) * torch.rand(batch, generator=generator, device=dev))
        top = (h - side) * torch.rand(batch, generator=generator, device=dev)
        left = (w - side) * torch.rand(batch, generator=generator, device=dev)
        flip = torch.where(torch.rand(batch, generator=generator, device=dev) < 0.5, -1.0, 1.0)
        steps = (torch.arange(self.size, device=dev, dtype=torch.float32) + 0.5) / self.size  # pixel centres, 0..1
        u = steps[None, :] - 0.5
        xs = left[:, None] + side[:, None] * (0.5 + flip[:, None] * u)  # source x of each output column
        ys = top[:, None] + side[:, None] * steps[None, :]
        height, width = self.stack.shape[-2:]
        gx = (xs / width) * 2 - 1  # align_corners=False: -1..1 spans the pixel edges
        gy = (ys / height) * 2 - 1
        grid = torch.stack([gx[:, None, :].expand(-1, self.size, -1), gy[:, :, None].expand(-1, -1, self.size)], -1)
        return F.grid_sample(self.stack[index], grid, mode="bilinear", padding_mode="border", align_corners=False)
