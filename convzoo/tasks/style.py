"""Fast neural style transfer: an image out, pixels 0..255; no test metric (a contact sheet shows it)."""

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK

STYLE = tasks.Task(
    name="style",
    output=OUTPUT_OF_TASK["style"],
    metrics=(),
    pipeline_tag="image-to-image",
    suggested="style-starry-night",
    min_side=16,  # the nets' reflection padding needs a few pixels on each side
    ten_lines='Image.fromarray(out[0].transpose(1, 2, 0).clip(0, 255).astype(np.uint8)).save("styled.png")\n',
)
