"""The entry types and the model metadata record. Standard library only; validated on construction.

An entry is plain, frozen data (cf. timm's ``PretrainedCfg``, torchvision's ``Weights.meta``) that
every stage reads from the table in ``convzoo.zoo``. ``ModelMetadata`` is the one typed form of the
``convzoo.*`` metadata_props that every exported ONNX file carries (DESIGN.md, "ONNX files explain
themselves"): packaging writes it, the runtime and everything else read it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from convzoo.errors import EntryError, IntegrityError, UnknownModelError

Task = Literal["classification", "segmentation", "style"]
OutputKind = Literal["logits", "mask_logits", "image"]
TASKS: tuple[str, ...] = get_args(Task)
OUTPUT_OF_TASK = {"classification": "logits", "segmentation": "mask_logits", "style": "image"}
OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("onecycle", "cosine", "constant")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SCALE_0_255 = 1 / 255


def validate_name(name: str) -> str:
    """Model names become folder names: refuse anything that could leave the store."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UnknownModelError(f"{name!r} is not a model name: use lower-case letters, digits, '-' and '_'")
    return name


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise EntryError(f"{where}: {message}")


def _frozen_json(value: Any) -> Any:
    """JSON's lists back as the tuples an entry was written with, so ``from_json(to_json(e)) == e``."""
    if isinstance(value, list):
        return tuple(_frozen_json(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _frozen_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Preprocess:
    """How a pixel array becomes the model's input: ``x = (pixel * scale - mean) / std`` per channel."""

    color: Literal["gray", "rgb"] = "rgb"
    size: tuple[int, int] | None = None  # (H, W); None: any size (fully convolutional models)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = SCALE_0_255
    layout: Literal["NCHW"] = "NCHW"
    crop_pct: float = 1.0  # <1: resize the shorter side to size/crop_pct, then centre-crop (timm's crop_pct)

    def __post_init__(self) -> None:
        where = "preprocess"
        _require(self.color in ("gray", "rgb"), where, f"color must be 'gray' or 'rgb', got {self.color!r}")
        _require(self.layout == "NCHW", where, f"layout must be 'NCHW', got {self.layout!r}")
        _require(self.size is None or (len(self.size) == 2 and all(isinstance(s, int) and s > 0 for s in self.size)),
                 where, f"size must be (H, W) of positive integers or None, got {self.size!r}")
        _require(len(self.mean) == len(self.std) == self.channels, where,
                 f"{self.color} images need {self.channels} means and stds, got {len(self.mean)} and {len(self.std)}")
        _require(all(math.isfinite(s) and s > 0 for s in self.std), where, f"std must be positive, got {self.std}")
        _require(all(math.isfinite(m) for m in self.mean), where, f"mean must be finite, got {self.mean}")
        _require(math.isfinite(self.scale) and self.scale > 0, where, f"scale must be positive, got {self.scale}")
        _require(0 < self.crop_pct <= 1, where, f"crop_pct must lie in (0, 1], got {self.crop_pct}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> dict[str, Any]:
        return {"layout": self.layout, "color": self.color, "size": list(self.size) if self.size else None,
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std), "crop_pct": self.crop_pct}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocess:
        size = data.get("size")
        return cls(color=data["color"], size=tuple(int(s) for s in size) if size else None,
                   mean=tuple(float(m) for m in data["mean"]), std=tuple(float(s) for s in data["std"]),
                   scale=float(data.get("scale", SCALE_0_255)), layout=data.get("layout", "NCHW"),
                   crop_pct=float(data.get("crop_pct", 1.0)))


@dataclass(frozen=True)
class Output:
    """What the first graph output is: ``logits``, ``mask_logits`` or an ``image`` in ``range``."""

    kind: OutputKind = "logits"
    range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _require(self.kind in get_args(OutputKind), "output", f"kind must be one of {get_args(OutputKind)}, "
                 f"got {self.kind!r}")
        _require(self.range is None or (len(self.range) == 2 and self.range[0] < self.range[1]), "output",
                 f"range must be (low, high) with low < high, got {self.range!r}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **({"range": list(self.range)} if self.range else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Output:
        low_high = data.get("range")
        return cls(kind=data.get("kind", "logits"), range=tuple(float(v) for v in low_high) if low_high else None)


@dataclass(frozen=True)
class Recipe:
    """How the model is trained. ``options`` holds task-specific settings (loss weights, tile size...)."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    label_smoothing: float = 0.0
    augment: tuple[str, ...] = ()  # names from convzoo.data.transforms, applied in order
    val_split: int = 5000  # training images held out for choosing checkpoints; the test set never is
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = "recipe"
        _require(isinstance(self.epochs, int) and self.epochs >= 1, where, f"epochs must be >= 1, got {self.epochs}")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 1, where,
                 f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.optimizer in OPTIMIZERS, where, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _require(self.schedule in SCHEDULES, where, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _require(math.isfinite(self.lr) and self.lr > 0, where, f"lr must be positive, got {self.lr}")
        _require(self.weight_decay >= 0 and 0 <= self.momentum < 1, where, "weight_decay must be >= 0 and "
                 f"momentum in [0, 1), got {self.weight_decay} and {self.momentum}")
        _require(0 <= self.label_smoothing < 1, where, f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        _require(self.val_split >= 0, where, f"val_split must be >= 0, got {self.val_split}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["augment"] = list(self.augment)
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recipe:
        _require(isinstance(data, Mapping), "recipe", f"must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        _require(not unknown, "recipe", f"unknown key(s) {unknown}")
        values = dict(data)
        if "augment" in values:
            values["augment"] = tuple(values["augment"])
        if "options" in values:
            values["options"] = _frozen_json(values["options"])
        return cls(**values)


# ----------------------------------------------------------------------------------------------
# typed training options: one frozen record per task; a key it does not know is refused


@dataclass(frozen=True)
class TrainingOptions:
    """Options every task's training takes."""

    deterministic: bool = False  # deterministic kernels everywhere (a real cost on CUDA)
    compile: bool = False  # torch.compile the model
    cpu_bf16: bool = False  # bf16 autocast for the training steps on a CPU with bf16 instructions (evaluation: fp32)
    checkpoint_every: int | None = None  # steps between mid-run last.pt saves (None: the task's default)
    val_seed: int = 0  # which training images are held out for validation


@dataclass(frozen=True)
class ClassifierOptions(TrainingOptions):
    warmup: float = 0.25  # one-cycle's warm-up, as a fraction of all steps (its pct_start)
    crop_padding: int | None = None  # random crop's padding in pixels (None: 1/8 of the side)
    flip_p: float = 0.5
    erase_p: float = 0.5
    # at export (convzoo.export.mirror): the file returns the mean of the logits of the image and of its mirror
    mirror_average: bool = False
    # knowledge distillation (convzoo.training.teacher): a stored classifier of the same labels, the soft
    # term's share of the loss, and the softmax temperature (Hinton et al. 2015)
    teacher: str | None = None
    distill_weight: float = 0.9
    distill_temperature: float = 4.0
    # a stored file of the same architecture whose weights start the run (convzoo.training.warm_start)
    init_from: str | None = None
    # every dropout layer's rate while training (None: the architecture's own); evaluation and the ONNX
    # file never drop, so the file is the same network whatever the rate
    dropout: float | None = None

    def __post_init__(self) -> None:
        _require(self.dropout is None or 0 <= self.dropout < 1, "recipe",
                 f"option dropout must lie in [0, 1), got {self.dropout}")
        _require(0 <= self.distill_weight <= 1, "recipe", f"option distill_weight must lie in [0, 1], got "
                 f"{self.distill_weight}")
        _require(math.isfinite(self.distill_temperature) and 0 < self.distill_temperature <= 100, "recipe",
                 f"option distill_temperature must lie in (0, 100], got {self.distill_temperature}")

    def padding(self, height: int) -> int:
        """The random crop's padding: ``crop_padding`` when set; else 4 pixels for 32x32 images (He et al.
        2016 on CIFAR-10), 2 for 28x28 and smaller.

        Fashion-MNIST's products are centred and scaled to fill the 28x28 frame (the data set's own
        preparation trims each photo and resizes its long side to 28), so the test set has no
        off-centre garments: shifts of 4 px (14% of the side) cut sleeves and soles off and teach
        the model views it will never be shown, while 2 px still breaks exact pixel positions.
        """
        if self.crop_padding is not None:
            return self.crop_padding
        return 2 if height <= 28 else 4


@dataclass(frozen=True)
class SegmentationOptions(TrainingOptions):
    loss: str = "weighted_ce"  # weighted_ce, dice, or weighted_ce+dice
    membrane_weight: float = 1.0  # class 0's weight in the cross-entropy
    steps_per_epoch: int = 50
    tile: int = 256  # side of the training tiles
    warmup_steps: int | None = None  # linear warm-up before the cosine (None: 5 % of the steps, at most 100)
    synthetic_size: int = 128  # side of the procedurally made sections of offline smoke runs


@dataclass(frozen=True)
class StyleOptions(TrainingOptions):
    style_image: str = ""  # a painting under shared/data/styles, or a path
    image_size: int = 256  # side of the content crops
    style_size: int = 512  # longer side of the style image
    steps: int = 2000  # per epoch
    log_every: int = 100
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 0.0  # total variation: smoothness of the output
    loss_network: str = "auto"  # vgg16 (torchvision's ImageNet weights), random-vgg, or auto (vgg16 when cached)
    loss_weights: str | None = None  # a file holding torchvision's VGG-16 state dict
    loss_seed: int = 0  # the random loss network's seed


OPTIONS_OF_TASK: dict[str, type[TrainingOptions]] = {
    "classification": ClassifierOptions, "segmentation": SegmentationOptions, "style": StyleOptions}
_OPTION_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def training_options(task: str, options: Mapping[str, Any], where: str = "recipe") -> TrainingOptions:
    """``options`` as the task's typed record; an unknown (misspelt) key or a wrong type is an ``EntryError``."""
    kind = OPTIONS_OF_TASK[task]
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(options) - set(fields))
    _require(not unknown, where, f"unknown {task} option(s) {unknown}; the known ones are {sorted(fields)}")
    values = {}
    for key, value in options.items():
        annotation = str(fields[key].type)
        allowed = next((types for name, types in _OPTION_TYPES.items() if annotation.startswith(name)), None)
        if value is None:
            _require("None" in annotation, where, f"option {key} cannot be None")
        elif allowed is not None:
            _require(isinstance(value, allowed) and (bool not in allowed or type(value) is bool)
                     and (allowed == (bool,) or not isinstance(value, bool)), where,
                     f"option {key} must be {annotation.split(' ')[0]}, got {value!r}")
        values[key] = value
    return kind(**values)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo: what it is, what it eats, what it says, and how it is trained."""

    name: str  # <arch>-<dataset>
    task: Task
    arch: str  # an @architecture in convzoo/models/
    dataset: str
    preprocess: Preprocess
    output: Output
    labels: tuple[str, ...]  # classification and segmentation: their number sizes the head
    recipe: Recipe = field(default_factory=Recipe)
    arch_args: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""
    year: int = 0
    summary: str = ""  # one or two sentences for cards and tables; says how it differs from the paper
    params: int | None = None  # measured by tests/test_zoo.py against the built model
    macs: int | None = None  # multiply-accumulates the exported file spends on one input at ``preprocess.size``
    pretrained: str | None = None  # torchvision weights enum ("ResNet18_Weights.IMAGENET1K_V1") when it can load them
    quantization: Literal["int8"] | None = None  # "int8": a static QDQ twin of ``base``
    base: str | None = None  # the FP32 entry an INT8 twin is quantized from

    def __post_init__(self) -> None:
        try:
            validate_name(self.name)
        except UnknownModelError as e:
            raise EntryError(str(e)) from None
        where = f"entry {self.name!r}"
        _require(self.task in TASKS, where, f"task must be one of {TASKS}, got {self.task!r}")
        _require(bool(self.arch) and bool(self.dataset), where, "arch and dataset must be named")
        _require(isinstance(self.preprocess, Preprocess) and isinstance(self.output, Output)
                 and isinstance(self.recipe, Recipe), where, "preprocess, output and recipe must be typed")
        _require(self.output.kind == OUTPUT_OF_TASK[self.task], where,
                 f"a {self.task} model outputs {OUTPUT_OF_TASK[self.task]!r}, not {self.output.kind!r}")
        if self.task == "style":
            _require(not self.labels, where, "a style network has no labels")
        else:
            _require(len(self.labels) >= 2 and len(set(self.labels)) == len(self.labels), where,
                     "labels must be two or more distinct names: their number sizes the head")
        _require((self.quantization is None) == (self.base is None), where,
                 "an INT8 twin names its base, and only a twin does")
        training_options(self.task, self.recipe.options, f"{where}, recipe")

    @property
    def in_channels(self) -> int:
        return self.preprocess.channels

    @property
    def passes(self) -> int:
        """How many times the exported file runs the network on one input: 2 when it averages over the mirror."""
        return 2 if getattr(training_options(self.task, self.recipe.options), "mirror_average", False) else 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "arch": self.arch, "arch_args": dict(self.arch_args),
                "dataset": self.dataset, "preprocess": self.preprocess.to_json(), "output": self.output.to_json(),
                "labels": list(self.labels), "recipe": self.recipe.to_json(), "paper": self.paper,
                "year": self.year, "summary": self.summary, "params": self.params, "macs": self.macs,
                "pretrained": self.pretrained, "quantization": self.quantization, "base": self.base}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelEntry:
        """The entry ``to_json`` wrote (a manifest's ``entry``), validated as on construction; ``EntryError``
        names the first thing wrong."""
        _require(isinstance(data, Mapping), "entry", f"must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        _require(not unknown, f"entry {data.get('name')!r}", f"unknown key(s) {unknown}")
        missing = sorted({"name", "task", "arch", "dataset", "preprocess", "output", "labels"} - set(data))
        _require(not missing, f"entry {data.get('name')!r}", f"missing key(s) {missing}")
        try:
            values = dict(data, preprocess=Preprocess.from_json(data["preprocess"]),
                          output=Output.from_json(data["output"]),
                          labels=tuple(data["labels"]), arch_args=_frozen_json(dict(data.get("arch_args") or {})))
            if "recipe" in data:
                values["recipe"] = Recipe.from_json(data["recipe"])
        except EntryError as e:  # a part's own sentence (the recipe's, the preprocessing's), said of this entry
            raise EntryError(f"entry {data.get('name')!r}, {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise EntryError(f"entry {data.get('name')!r}: malformed ({type(e).__name__}: {e})") from None
        return cls(**values)


# ----------------------------------------------------------------------------------------------
# the convzoo.* metadata_props of an exported file


METADATA_PREFIX = "convzoo."
# the node names of a mirror-averaged file's second pass (convzoo.export.mirror writes them, convzoo.ood skips them)
MIRROR_PASS_PREFIX = "mirror/"


@dataclass(frozen=True)
class ModelMetadata:
    """The ``convzoo.*`` metadata_props of a model.onnx, typed. ``to_props`` writes, ``from_props`` reads."""

    name: str
    task: Task
    preprocess: Preprocess
    output: Output
    labels: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    arch: str = ""
    paper: str = ""
    size_multiple: int = 1  # fully convolutional models: input sides must be multiples of this

    def __post_init__(self) -> None:
        _require(self.task in TASKS, "metadata", f"convzoo.task must be one of {TASKS}, got {self.task!r}")
        _require(isinstance(self.size_multiple, int) and self.size_multiple >= 1, "metadata",
                 f"convzoo.size_multiple must be a positive integer, got {self.size_multiple!r}")

    @classmethod
    def of_entry(cls, entry: ModelEntry, *, metrics: Mapping[str, Any], source: Mapping[str, Any], version: str,
                 size_multiple: int = 1) -> ModelMetadata:
        return cls(name=entry.name, task=entry.task, preprocess=entry.preprocess, output=entry.output,
                   labels=tuple(entry.labels), metrics=dict(metrics), source=dict(source), version=version,
                   arch=entry.arch, paper=f"{entry.paper}, {entry.year}" if entry.paper else "",
                   size_multiple=size_multiple)

    def to_props(self) -> dict[str, str]:
        props = {"name": self.name, "task": self.task, "labels": json.dumps(list(self.labels)),
                 "preprocess": json.dumps(self.preprocess.to_json()), "output": json.dumps(self.output.to_json()),
                 "metrics": json.dumps(dict(self.metrics)), "version": self.version,
                 "source": json.dumps(dict(self.source)), "arch": self.arch, "paper": self.paper}
        if self.size_multiple != 1:
            props["size_multiple"] = json.dumps(self.size_multiple)
        return {METADATA_PREFIX + key: value for key, value in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "the model") -> ModelMetadata:
        """Read the props of a file; a missing or malformed key is an ``IntegrityError`` naming it."""
        def get(key: str, default: str | None = None) -> str:
            value = props.get(METADATA_PREFIX + key, default)
            if value is None:
                raise IntegrityError(f"{where} has no {METADATA_PREFIX}{key} metadata; it was not exported by convzoo")
            return value

        try:
            task = get("task", "classification")
            return cls(name=get("name", ""), task=task, preprocess=Preprocess.from_json(json.loads(get("preprocess"))),
                       output=Output.from_json(json.loads(get("output", json.dumps({"kind": OUTPUT_OF_TASK.get(
                           task, "logits")})))),
                       labels=tuple(str(label) for label in json.loads(get("labels", "[]"))),
                       metrics=json.loads(get("metrics", "{}")), source=json.loads(get("source", "{}")),
                       version=get("version", ""), arch=get("arch", ""), paper=get("paper", ""),
                       size_multiple=int(json.loads(get("size_multiple", "1"))))
        except IntegrityError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, EntryError) as e:
            raise IntegrityError(f"{where} has malformed {METADATA_PREFIX}* metadata ({type(e).__name__}: {e}); "
                                 "export it again") from None
