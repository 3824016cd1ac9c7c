"""Semantic segmentation: mask logits per pixel, judged by pixel error (the ISBI 2012 challenge's,
the U-Net paper's headline); large inputs run overlap-tiled."""

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK

SEGMENTATION = tasks.Task(
    name="segmentation",
    output=OUTPUT_OF_TASK["segmentation"],
    metrics=(tasks.Metric("pixel_error", "pixel error", "lower"), tasks.Metric("dice", "Dice", "higher")),
    pipeline_tag="image-segmentation",
    suggested="unet-membranes",
    tiled=True,
    ten_lines='Image.fromarray((out[0].argmax(0) * 255).astype(np.uint8)).save("mask.png")\n',
)
