"""Real inputs for parity checks and test_data_set_0: test images where the data is local, else photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from convzoo.types import ModelEntry
from convzoo.runtime import normalize_batch, preprocess_image

REPO = Path(__file__).resolve().parent.parent.parent


def photos() -> list[np.ndarray]:
    """The colour photos bundled with scikit-image (no download)."""
    from skimage import data

    return [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]


def membrane_sections(data_dir: str | Path | None) -> list[Path]:
    """The last five sections (the held-out ones), found as training finds them ($CONVZOO_DATA too)."""
    from convzoo.data.membranes import section_images

    return section_images(data_dir)[-5:]


def sample_inputs(entry: ModelEntry, n: int, data_dir: str | Path | None = None) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(0)
    if entry.dataset == "fashion-mnist" and entry.preprocess.size is not None:
        from convzoo.data.idx import load_split

        images, _ = load_split("test", data_dir)
        return normalize_batch(images[:n], entry.preprocess), f"Fashion-MNIST test images 0..{n - 1}"
    if entry.dataset == "isbi2012-em" and membrane_sections(data_dir):
        sections = membrane_sections(data_dir)
        crops = []
        for i in range(n):
            image = Image.open(sections[i % len(sections)]).convert("L")
            top, left = rng.integers(0, image.height - 256), rng.integers(0, image.width - 256)
            crops.append(preprocess_image(image.crop((left, top, left + 256, top + 256)), entry.preprocess))
        return np.concatenate(crops), "256x256 crops of held-out ISBI 2012 sections"
    size = entry.preprocess.size or (256, 256)
    batch = []
    pool = photos()
    for i in range(n):
        photo = pool[i % len(pool)]
        side = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2])))
        top, left = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize(size[::-1], Image.Resampling.BILINEAR)
        batch.append(preprocess_image(crop, entry.preprocess))
    return np.concatenate(batch), f"random crops of scikit-image's bundled photos at {size[0]}x{size[1]}"
