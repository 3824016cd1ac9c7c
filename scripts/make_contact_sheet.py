"""Contact sheet of the shipped style networks: content photo | painting | result, a row per style.

    python scripts/make_contact_sheet.py [--store models] [--out docs/style-contact-sheet.png]

The content photos are the ones style training holds out (scikit-image's chelsea and coffee), so
the sheet shows the networks on photos they never saw. Runs on onnxruntime alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw
from skimage import data

from convzoo.registry import Store
from convzoo.zoo import STYLES
from convzoo.runtime import load_model

ASSETS = Path(__file__).resolve().parent.parent / "convzoo" / "assets" / "styles"
CELL = 320


def fit(image: Image.Image, size: int = CELL) -> Image.Image:
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store", default="models")
    p.add_argument("--out", default="docs/style-contact-sheet.png")
    args = p.parse_args()
    store = Store(args.store)
    photos = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    keys = [key for key in STYLES if store.find(f"style-{key}")]
    columns = 1 + 2 * len(photos)
    sheet = Image.new("RGB", (CELL * columns, (CELL + 24) * len(keys) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(["painting"] + [f"{kind} {i + 1}" for i in range(len(photos))
                                                for kind in ("photo", "result")]):
        draw.text((col * CELL + 8, 6), title, fill="black")
    for row, key in enumerate(keys):
        painting_file, title, artist, year = STYLES[key]
        model = load_model(f"style-{key}", store)
        y = 24 + row * (CELL + 24)
        sheet.paste(fit(Image.open(ASSETS / painting_file).convert("RGB")), (0, y))
        for i, photo in enumerate(photos):
            sheet.paste(fit(photo), ((1 + 2 * i) * CELL, y))
            sheet.paste(fit(model.stylize(photo, max_side=512)), ((2 + 2 * i) * CELL, y))
        draw.text((8, y + CELL + 4), f"style-{key}: {title}, {artist}, {year}", fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(keys)} styles)")


if __name__ == "__main__":
    main()
