"""Knowledge distillation from a stored model (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a
neural network"): the student learns from the teacher's softened class probabilities as well as from the labels.

The teacher is a file in the store, run once with onnxruntime over the training images before the first step,
so a step costs what it costs without a teacher. Its logits are those of the un-augmented image: a
mirror-averaging teacher (``resnet18-fashion``) answers the same for an image and its mirror, so the flip
augmentation keeps student and teacher on one view; the 2-pixel crop shift and random erasing do not, which
the labels' own term covers. The teacher never saw the validation split (the same ``val_split`` and seed
held it out of its training), so choosing the student's checkpoint on it stays honest.
"""

from __future__ import annotations


import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from tqdm import tqdm

from convzoo.data.transforms import normalize
from convzoo.errors import ConvzooError
from convzoo.registry import StoredModel
from convzoo.training import stored_for
from convzoo.types import ModelEntry

BATCH = 512  # images per onnxruntime call: the ResNet-18 teacher's activations stay under 200 MB


def stored_teacher(name: str, student: ModelEntry) -> StoredModel:
    """The stored model ``name``, refused with a sentence unless it classifies the student's images into the
    student's labels."""
    found = stored_for("teacher", name)
    entry = found.entry
    if entry.task != "classification" or list(entry.labels) != list(student.labels):
        raise ConvzooError(f"the teacher {name!r} does not classify into {student.name}'s labels; choose a "
                           f"{student.dataset} classifier")
    if entry.preprocess.size != student.preprocess.size or entry.preprocess.color != student.preprocess.color:
        raise ConvzooError(f"the teacher {name!r} takes other images than {student.name} (size or colour); "
                           f"choose a {student.dataset} classifier")
    return found


def teacher_logits(stored: StoredModel, images: torch.Tensor, threads: int) -> torch.Tensor:
    """The teacher's float32 logits for uint8 ``images`` (N x C x H x W), computed by onnxruntime."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(stored.onnx_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    out = []
    for start in tqdm(range(0, len(images), BATCH), desc=f"teacher {stored.name}", unit="batch", leave=False):
        x = normalize(images[start:start + BATCH].cpu(), stored.entry.preprocess).numpy()
        out.append(session.run(None, {input_name: np.ascontiguousarray(x)})[0])
    return torch.from_numpy(np.concatenate(out)).float() if out else torch.zeros(0, len(stored.entry.labels))


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *, smoothing: float,
                      weight: float, temperature: float) -> torch.Tensor:
    """``(1 - weight) * cross-entropy + weight * T^2 * KL(teacher_T || student_T)``; the T^2 keeps the soft
    term's gradients the size of the hard term's whatever the temperature (Hinton et al., section 2)."""
    hard = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    soft = F.kl_div(F.log_softmax(logits.float() / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True) * temperature ** 2
    return (1 - weight) * hard + weight * soft
