"""Image classification: logits over the labels, judged by test accuracy."""

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK

CLASSIFICATION = tasks.Task(
    name="classification",
    output=OUTPUT_OF_TASK["classification"],
    metrics=(tasks.Metric("accuracy", "accuracy", "higher"), tasks.Metric("top1", "accuracy", "higher")),
    pipeline_tag="image-classification",
    suggested="lenet5-fashion",
    ten_lines='print(json.loads(meta["convzoo.labels"])[int(out.argmax())])\n',
)
