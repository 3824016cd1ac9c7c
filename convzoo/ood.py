"""Does a picture look like what a classifier was trained on? An out-of-distribution score. No torch.

A classifier answers every picture with one of its classes, a cat photo with "Sandal 91%" (issue 23);
its softmax does not know when it is out of its depth. The score here is read from the model's own
features: for each fully connected layer's input (and the logits), the Mahalanobis distance to the
nearest class mean, under one covariance shared by the classes (Lee et al., 2018, "A simple unified
framework for detecting out-of-distribution samples"). Each layer's distance is divided by its 98th
percentile on training images the fit did not use, so every layer speaks in the same unit, and the
score is the largest of them: a picture is unusual when any layer finds it unusual.

The means and covariances are fitted on 10,000 Fashion-MNIST training images; the threshold is the
98th percentile of the score on the 10,000 test images, so at most 2% of real test images are flagged.
``scripts/ood.py calibrate`` fits every stored classifier and writes ``ood_stats/NAME.npz``;
``scripts/ood.py measure`` reports how many of them and how many non-product pictures are flagged.
A detector belongs to one ONNX file (its sha256): a re-exported model has none until it is calibrated
again, and then the notice is simply not shown.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convzoo.runtime import cpu_session
from convzoo.types import MIRROR_PASS_PREFIX

STATS = Path(__file__).resolve().parent / "ood_stats"
FLAGGED = 0.02  # the share of real test images the threshold lets through as "unusual"
MAX_FEATURES = 512  # a wider layer (an MLP's 784 raw pixels) costs a 784x784 precision matrix for little
SHRINK = 1e-3  # the covariance's ridge, relative to its mean variance: a dead ReLU unit must not divide by 0
FEATURE_OPS = ("Gemm", "MatMul")  # a fully connected layer; its first input is the features it reads


@dataclass(frozen=True)
class Layer:
    """One feature tensor's class-conditional Gaussian: class means, the shared precision, and its unit."""

    tensor: str
    means: np.ndarray  # (classes, features)
    precision: np.ndarray  # (features, features)
    unit: float  # the distance's 98th percentile on held-out training images

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to its nearest class mean, in this layer's unit."""
        flat = features.reshape(len(features), -1).astype(np.float64)
        centred = flat[:, None, :] - self.means[None]
        return np.einsum("nci,ij,ncj->nc", centred, self.precision, centred).min(axis=1) / self.unit


@dataclass(frozen=True)
class Detector:
    """A calibrated score for one ONNX file: ``score(features) > threshold`` means "not like the data"."""

    model: str
    sha256: str
    layers: tuple[Layer, ...]
    threshold: float
    test_flagged: float  # measured at calibration: the share of the test set above the threshold

    @property
    def tensors(self) -> list[str]:
        return [layer.tensor for layer in self.layers]

    def score(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return np.max([layer.distance(f) for layer, f in zip(self.layers, features)], axis=0)

    def save(self, folder: Path = STATS) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.model}.npz"
        arrays = {f"means_{i}": layer.means.astype(np.float32) for i, layer in enumerate(self.layers)}
        arrays |= {f"precision_{i}": layer.precision.astype(np.float32) for i, layer in enumerate(self.layers)}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, model=self.model, sha256=self.sha256, tensors=np.array(self.tensors),
                            units=np.array([layer.unit for layer in self.layers]), threshold=self.threshold,
                            test_flagged=self.test_flagged, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Detector:
        with np.load(path, allow_pickle=False) as data:
            layers = tuple(Layer(str(t), data[f"means_{i}"].astype(np.float64),
                                 data[f"precision_{i}"].astype(np.float64), float(u))
                           for i, (t, u) in enumerate(zip(data["tensors"], data["units"])))
            return cls(str(data["model"]), str(data["sha256"]), layers, float(data["threshold"]),
                       float(data["test_flagged"]))


def feature_tensors(model) -> list[str]:  # noqa: ANN001 -- an onnx.ModelProto; onnx is imported by the caller
    """The logits and the input of every fully connected layer no wider than ``MAX_FEATURES``."""
    from onnx import shape_inference  # noqa: PLC0415 -- onnx is needed only to fit or to open a feature session

    inferred = shape_inference.infer_shapes(model)
    widths = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim[1:]]
        if dims and all(dims):
            widths[info.name] = int(np.prod(dims))
    inputs = [node.input[0] for node in model.graph.node  # the plain pass's layers, not a mirror pass's copies
              if node.op_type in FEATURE_OPS and not node.name.startswith(MIRROR_PASS_PREFIX)]
    wanted = [model.graph.output[0].name, *inputs]
    return list(dict.fromkeys(t for t in wanted if widths.get(t, MAX_FEATURES + 1) <= MAX_FEATURES))


class FeatureSession:
    """The model with its feature tensors made graph outputs: one run gives every layer the score reads."""

    def __init__(self, path: Path | str, tensors: Sequence[str] | None = None) -> None:
        import onnx  # noqa: PLC0415

        model = onnx.load(str(path))
        self.tensors = list(tensors) if tensors is not None else feature_tensors(model)
        present = {o.name for o in model.graph.output}
        for name in self.tensors:
            if name not in present:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        self.session = cpu_session(model)
        self.input = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray, chunk: int = 256) -> list[np.ndarray]:
        """Each feature tensor for a preprocessed NCHW batch, one row per image."""
        parts = [self.session.run(self.tensors, {self.input: np.ascontiguousarray(batch[i:i + chunk], np.float32)})
                 for i in range(0, len(batch), chunk)]
        return [np.concatenate([p[k] for p in parts]).reshape(len(batch), -1) for k in range(len(self.tensors))]


def fit_layer(tensor: str, features: np.ndarray, labels: np.ndarray, held_out: np.ndarray) -> Layer:
    classes = np.unique(labels)
    x = features.astype(np.float64)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / len(x)
    ridge = SHRINK * np.trace(covariance) / len(covariance)
    precision = np.linalg.pinv(covariance + ridge * np.eye(len(covariance)), hermitian=True)
    layer = Layer(tensor, means, precision, 1.0)
    unit = float(np.quantile(layer.distance(held_out), 1 - FLAGGED))
    return Layer(tensor, means, precision, unit if unit > 0 else 1.0)


def calibrate(model: str, sha256: str, session: FeatureSession, train: np.ndarray, train_labels: np.ndarray,
              held_out: np.ndarray, test: np.ndarray) -> Detector:
    """Fit each layer on ``train`` (its unit on ``held_out``, other training images), then set the threshold so
    that at most ``FLAGGED`` of ``test`` lies above it. Arrays: preprocessed NCHW batches."""
    fitted, kept = session.run(train), session.run(held_out)
    layers = tuple(fit_layer(t, f, train_labels, h) for t, f, h in zip(session.tensors, fitted, kept))
    partial = Detector(model, sha256, layers, np.inf, 0.0)
    scores = partial.score(session.run(test))
    threshold = float(np.quantile(scores, 1 - FLAGGED, method="higher"))
    return Detector(model, sha256, layers, threshold, float((scores > threshold).mean()))


# ----------------------------------------------------------------------------------------------
# the app's side: one detector and one feature session per ONNX file


@dataclass(frozen=True)
class Verdict:
    score: float
    threshold: float

    @property
    def unusual(self) -> bool:
        return self.score > self.threshold

    def sentence(self, what: str = "the ten Fashion-MNIST products") -> str:
        """What the page says beside the answer."""
        if self.unusual:
            return (f"**This picture does not look like {what}** (unusualness {self.score:.1f}, the threshold is "
                    f"{self.threshold:.1f}, which only 2% of real test images pass): the model still answers with "
                    "one of its classes, but the answer means little.")
        return (f"Looks like {what} to this model (unusualness {self.score:.1f}, below the threshold "
                f"{self.threshold:.1f}).")


_CACHE: dict[tuple[str, str], tuple[Detector, FeatureSession] | None] = {}
_LOCK = threading.Lock()


def detector_for(name: str, onnx_path: Path, sha256: str, folder: Path = STATS
                 ) -> tuple[Detector, FeatureSession] | None:
    """The calibrated detector of this very file, with its feature session; None when it was never calibrated or
    was calibrated on another version of the file."""
    key = (str(folder / name), sha256)
    with _LOCK:
        if key not in _CACHE:
            path = folder / f"{name}.npz"
            detector = Detector.load(path) if path.is_file() else None
            if detector is None or detector.sha256 != sha256:
                _CACHE[key] = None
            else:
                _CACHE[key] = detector, FeatureSession(onnx_path, detector.tensors)
        return _CACHE[key]


def verdict(name: str, onnx_path: Path, sha256: str, batch: np.ndarray,
            folder: Path = STATS) -> Verdict | None:
    """The score of one preprocessed 1xCxHxW input against its model's calibrated threshold, if it has one."""
    found = detector_for(name, onnx_path, sha256, folder)
    if found is None:
        return None
    detector, session = found
    return Verdict(float(detector.score(session.run(batch))[0]), detector.threshold)

