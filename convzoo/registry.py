"""Look-up of registry entries and the on-disk model store. Standard library only; no sessions.

The entries are the table in ``convzoo.zoo`` (their types live in ``convzoo.types``). The store is a
folder per model (``model.onnx``, ``model.json``, ``README.md``) searched in ``$CONVZOO_HOME``, the
user store ``~/.cache/convzoo`` and the models shipped with convzoo, in that order. Sessions are the
runtime's business (``convzoo.runtime.load``): this module only finds, checks and writes files.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convzoo.errors import IntegrityError, ModelNotInStoreError, UnknownModelError
from convzoo.types import ModelEntry, validate_name
from convzoo.zoo import ENTRIES

__all__ = ["names", "entries", "get", "validate_name", "Store", "StoredModel", "shipped_store", "user_store",
           "default_roots", "write_root", "sha256_file", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "staged_model_folder", "ONNX_FILE", "MANIFEST_FILE", "CARD_FILE"]

# ----------------------------------------------------------------------------------------------
# look-up

_TABLE: dict[str, ModelEntry] = {entry.name: entry for entry in ENTRIES}


def _table() -> dict[str, ModelEntry]:
    return _TABLE


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

