"""Fast neural style transfer: an image out, pixels 0..255; no test metric (a contact sheet shows it);
the answer is a ``Stylized``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from PIL import Image

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK


@dataclass(frozen=True)
class Stylized:
    """The photo painted in the model's style, as an RGB image."""

    image: Image.Image

    def save(self, path: str | os.PathLike) -> None:
        self.image.save(path)


def predict(model: Any, image: Any, *, max_side: int | None = 512, **_: Any) -> Stylized:
    return Stylized(model.stylize(image, max_side=max_side))


STYLE = tasks.Task(
    name="style",
    output=OUTPUT_OF_TASK["style"],
    output_name="image_out",
    metrics=(),
    pipeline_tag="image-to-image",
    suggested="style-starry-night",
    min_side=16,  # the nets' reflection padding needs a few pixels on each side
    half_storage=True,  # five style nets fit the Space's 50 MiB budget only with float16 weights
    predict=predict,
    train="convzoo.training.style:train_style",
    unevaluated="it has no test metric; look at docs/style-contact-sheet.png",
    ten_lines='Image.fromarray(out[0].transpose(1, 2, 0).clip(0, 255).astype(np.uint8)).save("styled.png")\n',
)
