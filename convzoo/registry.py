"""Registry entries, look-up, and the on-disk model store. Standard library only.

An entry is plain, frozen data (cf. timm's ``PretrainedCfg``, torchvision's ``Weights.meta``): every
stage -- training, export, serving, demos -- reads the same table in ``convzoo.zoo``. The store is a
folder per model (``model.onnx``, ``model.json``, ``README.md``) searched in ``$CONVZOO_HOME``, the
user store ``~/.cache/convzoo`` and the models shipped with convzoo, in that order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from convzoo.errors import IntegrityError, ModelNotInStoreError, UnknownModelError

Task = Literal["classification", "segmentation", "style"]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SCALE_0_255 = 1 / 255


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

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> dict[str, Any]:
        return {"layout": self.layout, "color": self.color, "size": list(self.size) if self.size else None,
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std), "crop_pct": self.crop_pct}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocess:
        size = data.get("size")
        return cls(color=data["color"], size=tuple(size) if size else None, mean=tuple(data["mean"]),
                   std=tuple(data["std"]), scale=float(data.get("scale", SCALE_0_255)),
                   layout=data.get("layout", "NCHW"), crop_pct=float(data.get("crop_pct", 1.0)))


@dataclass(frozen=True)
class Output:
    """What the first graph output is: ``logits``, ``mask_logits`` or an ``image`` in ``range``."""

    kind: Literal["logits", "mask_logits", "image"] = "logits"
    range: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **({"range": list(self.range)} if self.range else {})}


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

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["augment"] = list(self.augment)
        data["options"] = dict(self.options)
        return data


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
    macs: int | None = None  # multiply-accumulates for one input at ``preprocess.size``
    pretrained: str | None = None  # torchvision weights enum ("ResNet18_Weights.IMAGENET1K_V1") when it can load them
    quantization: Literal["int8"] | None = None  # "int8": a static QDQ twin of ``base``
    base: str | None = None  # the FP32 entry an INT8 twin is quantized from

    @property
    def in_channels(self) -> int:
        return self.preprocess.channels

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "arch": self.arch, "arch_args": dict(self.arch_args),
                "dataset": self.dataset, "preprocess": self.preprocess.to_json(), "output": self.output.to_json(),
                "labels": list(self.labels), "recipe": self.recipe.to_json(), "paper": self.paper,
                "year": self.year, "summary": self.summary, "params": self.params, "macs": self.macs,
                "pretrained": self.pretrained, "quantization": self.quantization, "base": self.base}


# ----------------------------------------------------------------------------------------------
# look-up


def _table() -> dict[str, ModelEntry]:
    from convzoo.zoo import ENTRIES  # the table imports this module's types

    return {entry.name: entry for entry in ENTRIES}


def names(task: str | None = None) -> list[str]:
    return [name for name, entry in _table().items() if task is None or entry.task == task]


def entries(task: str | None = None) -> list[ModelEntry]:
    return [entry for entry in _table().values() if task is None or entry.task == task]


def get(name: str) -> ModelEntry:
    table = _table()
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, table, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"no model named {name!r}{hint} `convzoo list` shows all")


def validate_name(name: str) -> str:
    """Model names become folder names: refuse anything that could leave the store."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UnknownModelError(f"{name!r} is not a model name: use lower-case letters, digits, '-' and '_'")
    return name


# ----------------------------------------------------------------------------------------------
# the store

ONNX_FILE, MANIFEST_FILE, CARD_FILE = "model.onnx", "model.json", "README.md"


def shipped_store() -> Path:
    """The models shipped with convzoo: inside the wheel, or ``models/`` of a source checkout."""
    packaged = Path(__file__).parent / "_shipped"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "models"


def user_store() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convzoo"


def default_roots() -> list[Path]:
    roots = [Path(os.environ["CONVZOO_HOME"])] if os.environ.get("CONVZOO_HOME") else []
    return [*roots, user_store(), shipped_store()]


def write_root() -> Path:
    """Where exports land unless told otherwise: ``$CONVZOO_HOME`` or the user store."""
    return default_roots()[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredModel:
    """A model folder in a store: its files and its manifest."""

    name: str
    folder: Path
    manifest: Mapping[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE

    @property
    def task(self) -> str:
        return self.manifest["entry"]["task"]

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def size_bytes(self) -> int:
        return self.onnx_path.stat().st_size

    def verify(self) -> None:
        """Refuse a file that is missing or does not match the sha256 its manifest records."""
        if not self.onnx_path.is_file():
            raise IntegrityError(f"{self.name}: {self.onnx_path} is missing; export it again with `convzoo export {self.name}`")
        actual = _cached_sha256(self.onnx_path)
        if actual != self.sha256:
            raise IntegrityError(
                f"{self.name}: {self.onnx_path} has sha256 {actual[:12]}..., but its manifest says {self.sha256[:12]}...; "
                f"the file is corrupt or was changed: export or download it again")


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


class Store:
    """The model store: model folders under one or more roots, the first root winning."""

    def __init__(self, roots: list[Path] | Path | str | None = None) -> None:
        if roots is None:
            roots = default_roots()
        elif isinstance(roots, (str, Path)):
            roots = [Path(roots)]
        self.roots = [Path(root) for root in roots]
        self._sessions: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"Store({[str(root) for root in self.roots]})"

    def _folders(self) -> Iterator[Path]:
        seen: set[str] = set()
        for root in self.roots:
            if not root.is_dir():
                continue
            for folder in sorted(root.iterdir()):
                if folder.name in seen or folder.name.startswith(".") or not (folder / MANIFEST_FILE).is_file():
                    continue
                seen.add(folder.name)
                yield folder

    def find(self, name: str) -> StoredModel | None:
        validate_name(name)
        for root in self.roots:
            folder = root / name
            if (folder / MANIFEST_FILE).is_file():
                try:
                    manifest = json.loads((folder / MANIFEST_FILE).read_text())
                except (OSError, json.JSONDecodeError) as e:
                    raise IntegrityError(f"{name}: cannot read {folder / MANIFEST_FILE} ({e}); export it again") from e
                return StoredModel(name, folder, manifest)
        return None

    def get(self, name: str) -> StoredModel:
        stored = self.find(name)
        if stored is None:
            known = name in names()
            how = (f"train and export it: `convzoo train {name}` then `convzoo export {name}`" if known
                   else "`convzoo list` shows the models convzoo knows")
            raise ModelNotInStoreError(f"{name!r} is not in the store ({', '.join(map(str, self.roots))}); {how}")
        return stored

    def models(self, task: str | None = None) -> list[StoredModel]:
        found = [self.find(folder.name) for folder in self._folders()]
        return [m for m in found if m is not None and (task is None or m.task == task)]

    def names(self, task: str | None = None) -> list[str]:
        return [m.name for m in self.models(task)]

    def load(self, name: str, providers: list[str] | None = None, threads: int | None = None):
        """An ``OnnxModel`` for ``name``, verified against its sha256; one cached session per model."""
        from convzoo.runtime import OnnxModel  # onnxruntime is not needed to list the store

        stored = self.get(name)
        stored.verify()
        key = (name, stored.sha256)
        if key not in self._sessions:
            self._sessions[key] = OnnxModel(stored.onnx_path, providers=providers, threads=threads)
        return self._sessions[key]


# ----------------------------------------------------------------------------------------------
# atomic writes: an interrupted export or download never leaves a model that looks whole


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a store is read by servers and other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def staged_model_folder(root: Path, name: str) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``root/name`` in one rename.

    The manifest is written last by the caller, and a folder without a manifest is not a model,
    so a crash at any point leaves either the old model or none -- never half of a new one.
    """
    validate_name(name)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.staging-"))
    staging.chmod(0o755)  # mkdtemp makes 0700
    try:
        yield staging
        final = root / name
        if final.exists():
            retired = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.old-"))
            os.replace(final, retired / name)
            os.replace(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

