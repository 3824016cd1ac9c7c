"""The out-of-distribution notice of Classify and Convolution thinking (issue 23): calibrate it, then measure it.

    python scripts/ood_measure.py calibrate [NAME ...] [--store models]   # writes convzoo/ood_stats/NAME.npz
    python scripts/ood_measure.py measure [NAME ...] [--store models]     # the README's table

``calibrate`` fits each classifier's detector (``convzoo.ood``) on 10,000 Fashion-MNIST training images (its
units on 5,000 others) and sets its threshold on the 10,000 test images. ``measure`` then counts, for each
model, the test images flagged (at most 2% by construction) and the non-product pictures flagged, each taken
through Classify's own path (``convzoo.demos.classify.model_input``: fashionize, then the model's
preprocessing). The non-product pictures (``probe_set``) are scikit-image's bundled photos and random crops
of them, its textures and crops of them, noise, flat colours and digits drawn in the system's fonts; a
picture Classify refuses with a sentence (a flat colour: "there is no product to find") counts as flagged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convzoo import ood
from convzoo.data.idx import load_split
from convzoo.errors import BadInputError
from convzoo.registry import Store, shipped_store

FIT, HELD_OUT = 10_000, 5_000  # training images: the Gaussians' fit, then each layer's unit
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "clock", "horse", "hubble_deep_field",
          "immunohistochemistry", "moon", "page", "text", "retina", "logo", "colorwheel", "microaneurysms")
TEXTURES = ("brick", "grass", "gravel", "checkerboard")
FONTS = sorted(Path("/usr/share/fonts/truetype").glob("*/*.ttf"))


def _crops(image: np.ndarray, count: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The image, then ``count`` crops of 30 to 90% of its side at random places."""
    yield image
    height, width = image.shape[:2]
    for _ in range(count):
        side = rng.uniform(0.3, 0.9)
        h, w = int(height * side), int(width * side)
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        yield image[top:top + h, left:left + w]


def _skimage(name: str) -> np.ndarray:
    import skimage.data  # noqa: PLC0415 -- convzoo[demo]

    image = getattr(skimage.data, name)()
    return (np.asarray(image) * (255 if image.dtype == bool else 1)).astype(np.uint8)


def _digit(index: int, rng: np.random.Generator) -> np.ndarray:
    """A digit drawn dark on light, as the Draw tab's canvas is: a font, a size, a stroke, a slant."""
    canvas = Image.new("L", (140, 140), 255)
    font = ImageFont.truetype(str(FONTS[index % len(FONTS)]), int(rng.integers(60, 110)))
    ImageDraw.Draw(canvas).text((70, 70), str(index % 10), fill=0, font=font, anchor="mm",
                                stroke_width=int(rng.integers(0, 5)), stroke_fill=0)
    return np.asarray(canvas.rotate(rng.uniform(-15, 15), fillcolor=255))


def probe_set(seed: int = 1) -> dict[str, list[np.ndarray]]:
    """Pictures that are not Fashion-MNIST products, by kind (uint8, grey or RGB)."""
    rng = np.random.default_rng(seed)
    noise = [rng.integers(0, 256, (side, side) if grey else (side, side, 3), dtype=np.uint8)
             for side in (28, 64, 128) for grey in (True, False) for _ in range(15)]
    noise += [np.clip(rng.normal(128, spread, (64, 64)), 0, 255).astype(np.uint8) for spread in (20, 60)
              for _ in range(10)]
    return {
        "photos": [c for name in PHOTOS for c in _crops(_skimage(name), 9, rng)],
        "textures": [c for name in TEXTURES for c in _crops(_skimage(name), 24, rng)],
        "noise": noise,
        "flat colours": [np.full((64, 64, 3), rng.integers(0, 256, 3), np.uint8) for _ in range(50)],
        "drawn digits": [_digit(i, rng) for i in range(200)] if FONTS else [],
    }


def _classifiers(store: Store, names: list[str]) -> list[str]:
    return names or [m.name for m in store.models("classification")]


def _batch(model, pixels: np.ndarray) -> np.ndarray:  # noqa: ANN001 -- an OnnxModel
    return np.concatenate([model.preprocess(Image.fromarray(p)) for p in pixels])


def calibrate(store: Store, names: list[str], folder: Path = ood.STATS) -> None:
    from convzoo.runtime import load_model  # noqa: PLC0415

    train, labels = load_split("train")
    test, _ = load_split("test")
    order = np.random.default_rng(0).permutation(len(train))
    fit, held_out = order[:FIT], order[FIT:FIT + HELD_OUT]
    for name in _classifiers(store, names):
        model, stored = load_model(name, store), store.get(name)
        batch = partial(_batch, model)
        session = ood.FeatureSession(stored.onnx_path)
        detector = ood.calibrate(name, stored.sha256, session, batch(train[fit]), labels[fit], batch(train[held_out]),
                                 batch(test))
        path = detector.save(folder)
        print(f"{name}: {len(detector.layers)} layers ({', '.join(session.tensors)}), threshold "
              f"{detector.threshold:.2f}, test flagged {detector.test_flagged:.2%} -> {path}", flush=True)


def _flagged(store: Store, name: str, detector: ood.Detector, session: ood.FeatureSession,
             pictures: list[np.ndarray]) -> tuple[int, int]:
    """How many of ``pictures`` Classify flags (or refuses with a sentence), out of how many."""
    from convzoo.demos.classify import model_input  # noqa: PLC0415 -- Classify's own path to the tensor

    refused, tensors = 0, []
    for p in pictures:
        try:
            tensors.append(model_input(store, name, Image.fromarray(p))[0])
        except BadInputError:  # Classify answers with a sentence instead of a class
            refused += 1
    scores = detector.score(session.run(np.concatenate(tensors))) if tensors else np.zeros(0)
    return int((scores > detector.threshold).sum()) + refused, len(pictures)


def measure(store: Store, names: list[str], folder: Path = ood.STATS) -> dict[str, dict[str, float]]:
    """For each model: the share of test images and of each kind of non-product picture that is flagged."""
    test, _ = load_split("test")
    probes = {kind: pictures for kind, pictures in probe_set().items() if pictures}
    kinds = ["test set", *probes, "all non-products"]
    print("| model | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds), flush=True)
    table = {}
    for name in _classifiers(store, names):
        stored = store.get(name)
        found = ood.detector_for(name, stored.onnx_path, stored.sha256, folder)
        if found is None:
            print(f"{name}: not calibrated for this file; run `python scripts/ood_measure.py calibrate {name}`")
            continue
        detector, session = found
        flagged = partial(_flagged, store, name, detector, session)
        row = {"test set": flagged(list(test))}
        row |= {kind: flagged(pictures) for kind, pictures in probes.items()}
        hit = sum(n for kind, (n, _) in row.items() if kind != "test set")
        total = sum(t for kind, (_, t) in row.items() if kind != "test set")
        row["all non-products"] = (hit, total)
        table[name] = {kind: n / t for kind, (n, t) in row.items()}
        print(f"| {name} | " + " | ".join(f"{n / t:.1%} ({n}/{t})" for n, t in row.values()) + " |", flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("calibrate", "measure"))
    parser.add_argument("names", nargs="*", help="classifiers (default: every one in the store)")
    parser.add_argument("--store", type=Path, help="a model store folder (default: the shipped models/)")
    args = parser.parse_args(argv)
    store = Store(args.store) if args.store else Store([shipped_store()])
    if args.command == "calibrate":
        calibrate(store, args.names)
    else:
        measure(store, args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
