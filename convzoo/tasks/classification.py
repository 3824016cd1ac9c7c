"""Image classification: logits over the labels, judged by test accuracy; the answer is a ``Classification``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from convzoo import tasks
from convzoo.types import OUTPUT_OF_TASK


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


class Prediction(NamedTuple):
    label: str
    index: int
    probability: float


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int = 5) -> list[Prediction]:
    """The ``k`` most probable classes, best first; ties keep class order (a stable sort), everywhere alike."""
    probabilities = np.asarray(probabilities).ravel()
    order = np.argsort(-probabilities, kind="stable")[:max(0, k)]
    return [Prediction(labels[i] if i < len(labels) else str(i), int(i), float(probabilities[i])) for i in order]


@dataclass(frozen=True)
class Classification:
    """The best class, the ``k`` best with their probabilities (best first), and every class's probability."""

    label: str
    probability: float
    top_k: list[Prediction]
    probabilities: np.ndarray = field(repr=False)
    labels: list[str] = field(repr=False)

    @classmethod
    def of_logits(cls, logits: np.ndarray, labels: Sequence[str], k: int = 5) -> Classification:
        """One image's logits (in float64, so a probability near 1 keeps its digits) as the typed answer."""
        probabilities = softmax(np.asarray(logits, np.float64).ravel())
        ranked = top_k(probabilities, labels, len(probabilities))
        return cls(ranked[0].label, ranked[0].probability, ranked[:k], probabilities, list(labels))

    def as_dict(self) -> dict[str, float]:
        return {p.label: p.probability for p in self.top_k}

    def to_json(self) -> list[dict[str, Any]]:
        return [{"label": p.label, "index": p.index, "probability": p.probability} for p in self.top_k]


def predict(model: Any, image: Any, *, k: int = 5, **_: Any) -> Classification:
    return Classification.of_logits(model.run(model.preprocess(image))[0], model.labels, k)


CLASSIFICATION = tasks.Task(
    name="classification",
    output=OUTPUT_OF_TASK["classification"],
    output_name="logits",
    metrics=(tasks.Metric("accuracy", "accuracy", "higher"), tasks.Metric("top1", "accuracy", "higher")),
    pipeline_tag="image-classification",
    suggested="lenet5-fashion",
    agreement="top1_agreement",
    top_k=True,
    predict=predict,
    train="convzoo.training.loop:train_classifier",
    evaluate="convzoo.evaluation:evaluate_classifier",
    ten_lines='print(json.loads(meta["convzoo.labels"])[int(out.argmax())])\n',
)
