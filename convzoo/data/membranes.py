"""Image/label pairs for segmentation: the ISBI 2012 EM sections, any folder of pairs, or synthetic cells.

numpy, Pillow and scipy only (no torch), so evaluation with onnxruntime reads the same data.
Labels are class indices: 0 = membrane (boundary), 1 = cell interior, as ``unet-membranes``
names them. Label files use the ISBI convention (0 = membrane, 255 = cell); any label image with
values above 1 is thresholded at 128, and a label image of small integers is taken as indices.

Layouts understood (a user's own data needs only the second):

- ``ROOT/train/image/N.png`` + ``ROOT/train/label/N.png`` (the ISBI folder this project ships);
- ``ROOT/image(s)/NAME.ext`` + ``ROOT/label(s)|mask(s)/NAME.ext``, paired by file stem.

The last ``val`` sections (in natural order) are held out for validation, always the same ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from convzoo.errors import DataNotFoundError

REPO = Path(__file__).resolve().parent.parent.parent
ISBI = "isbi2012-em"
IMAGE_EXTS = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}
IMAGE_DIRS, LABEL_DIRS = ("image", "images", "img"), ("label", "labels", "mask", "masks")


@dataclass(frozen=True)
class Sections:
    """Grey images and class-index labels, uint8 N x H x W, with their names."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.names)

    def split(self, val: int) -> tuple[Sections, Sections]:
        """(train, held-out): the last ``val`` sections are held out."""
        if not 0 <= val < len(self):
            raise DataNotFoundError(f"cannot hold out {val} of {len(self)} sections from {self.source}; "
                                    f"keep at least one for training")
        cut = len(self) - val
        return (Sections(self.images[:cut], self.labels[:cut], self.names[:cut], self.source),
                Sections(self.images[cut:], self.labels[cut:], self.names[cut:], self.source))


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def pair_folders(root: Path) -> tuple[Path, Path] | None:
    """The image and label folders under ``root``, ``root/train`` first; None when neither layout is there."""
    for base in (root / "train", root):
        images, labels = _first_dir(base, IMAGE_DIRS), _first_dir(base, LABEL_DIRS)
        if images and labels:
            return images, labels
    return None


def candidate_roots(data_dir: str | Path | None = None) -> list[Path]:
    if data_dir:
        return [Path(data_dir)]
    roots = []
    if os.environ.get("CONVZOO_DATA"):
        roots += [Path(os.environ["CONVZOO_DATA"]) / ISBI, Path(os.environ["CONVZOO_DATA"])]
    return [*roots, REPO / "data" / ISBI, REPO.parent / "shared" / "data" / ISBI]


def find_root(data_dir: str | Path | None = None) -> Path:
    roots = candidate_roots(data_dir)
    for root in roots:
        if pair_folders(root):
            return root
    looked = ", ".join(str(r) for r in roots)
    raise DataNotFoundError(
        f"no image/label pairs found (looked in {looked}). Pass --data-dir FOLDER holding image/ and label/ "
        f"subfolders (or train/image and train/label, the ISBI 2012 layout), with label files named like "
        f"their images; labels are 0 = membrane/boundary, 255 = inside")


def section_images(data_dir: str | Path | None = None) -> list[Path]:
    """The section images where ``find_root`` finds them ($CONVZOO_DATA included), in natural order; [] when
    there are none."""
    try:
        image_dir, _ = pair_folders(find_root(data_dir))
    except DataNotFoundError:
        return []
    return sorted((p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_natural_key)


def to_class_indices(label: np.ndarray) -> np.ndarray:
    if label.ndim == 3:
        label = label[..., 0]
    if label.max(initial=0) > 1:
        return (label >= 128).astype(np.uint8)
    return label.astype(np.uint8)


def read_sections(data_dir: str | Path | None = None) -> Sections:
    """Every labelled pair in the folder, in natural order of file name."""
    root = find_root(data_dir)
    image_dir, label_dir = pair_folders(root)
    labels_by_stem = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    image_paths = section_images(root)
    pairs = [(p, labels_by_stem[p.stem]) for p in image_paths if p.stem in labels_by_stem]
    if not pairs:
        raise DataNotFoundError(f"{image_dir} and {label_dir} hold no pairs of images with the same file stem")
    images, labels = [], []
    for image_path, label_path in pairs:
        image = np.asarray(Image.open(image_path).convert("L"))
        label = to_class_indices(np.asarray(Image.open(label_path)))
        if image.shape != label.shape:
            raise DataNotFoundError(f"{image_path.name}: image is {image.shape}, "
                                    f"its label {label_path} is {label.shape}")
        images.append(image)
        labels.append(label)
    if len({im.shape for im in images}) > 1:
        raise DataNotFoundError(f"images in {image_dir} differ in size; crop or resize them to one size first")
    return Sections(np.stack(images), np.stack(labels), tuple(p.stem for p, _ in pairs), str(root))


def read_test_images(data_dir: str | Path | None = None) -> list[tuple[str, np.ndarray]]:
    """The unlabelled ``test/`` sections of the ISBI layout (empty when there are none)."""
    root = find_root(data_dir)
    folder = root / "test"
    if not folder.is_dir():
        return []
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
    return [(p.stem, np.asarray(Image.open(p).convert("L"))) for p in paths]


# ----------------------------------------------------------------------------------------------
# synthetic membranes: offline tests and a quick demo of the task without the real data


def synthetic_sections(n: int = 4, size: int = 128, cells: int = 40, seed: int = 0) -> Sections:
    """EM-like sections made procedurally: Voronoi cells with dark, blurred membranes, texture and noise.

    The same ``seed`` gives the same sections. Labels are exact: 0 on membranes, 1 inside cells.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images, labels = [], []
    for _ in range(n):
        points = rng.uniform(0, size, (cells, 2))
        distance = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2
        region = distance.argmin(-1)
        boundary = ((region != np.roll(region, 1, 0)) | (region != np.roll(region, 1, 1)))
        boundary[0, :] = boundary[:, 0] = False  # np.roll wraps around: no membrane along the seam
        thickness = int(rng.integers(1, 3))
        membrane = ndimage.binary_dilation(boundary, iterations=thickness)
        interior = rng.uniform(0.55, 0.85, cells)[region]  # each cell its own grey, as in EM
        texture = ndimage.gaussian_filter(rng.normal(0, 0.08, (size, size)), 1.5)
        image = np.where(membrane, rng.uniform(0.1, 0.25), interior) + texture
        image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0, 0.03, (size, size))
        images.append(np.clip(image * 255, 0, 255).astype(np.uint8))
        labels.append((~membrane).astype(np.uint8))
    return Sections(np.stack(images), np.stack(labels), tuple(str(i) for i in range(n)), f"synthetic(seed={seed})")


def write_pairs(sections: Sections, folder: str | Path, layout: str = "plain") -> Path:
    """Write sections as a folder of pairs: ``plain`` (image/, label/) or ``isbi`` (train/image, train/label)."""
    root = Path(folder)
    base = root / "train" if layout == "isbi" else root
    for sub in ("image", "label"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name, image, label in zip(sections.names, sections.images, sections.labels):
        Image.fromarray(image).save(base / "image" / f"{name}.png")
        Image.fromarray((label * 255).astype(np.uint8)).save(base / "label" / f"{name}.png")
    return root
