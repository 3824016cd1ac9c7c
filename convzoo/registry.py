"""Look-up of registry entries and the on-disk model store. Standard library only; no sessions.

The entries are the table in ``convzoo.zoo`` (their types live in ``convzoo.types``). The store is a
folder per model (``model.onnx``, ``model.json``, ``README.md``) searched in ``$CONVZOO_HOME``, the
user store ``~/.cache/convzoo`` and the models shipped with convzoo, in that order. Sessions are the
runtime's business (``convzoo.runtime.load``): this module only finds, checks and writes files.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the pid in a leftover's name decides
    fcntl = None

from convzoo.errors import EntryError, IntegrityError, ModelNotInStoreError, UnknownModelError
from convzoo.types import NAME_PATTERN, TASKS, ModelEntry, validate_name
from convzoo.zoo import ENTRIES

__all__ = ["names", "entries", "get", "validate_name", "Store", "StoredModel", "BrokenModel", "check_manifest",
           "read_folder", "install_folder", "publish_folder", "clean_stale", "shipped_store", "user_store",
           "default_roots", "write_root", "write_root_for", "read_only", "installed_store", "sha256_file",
           "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "staged_model_folder", "ONNX_FILE",
           "MANIFEST_FILE", "CARD_FILE"]

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


def installed_store() -> Path:
    """The shipped models inside an installed package (site-packages/convzoo/_shipped): never written."""
    return Path(__file__).resolve().parent / "_shipped"


def read_only(root: Path) -> bool:
    """Is ``root`` a store convzoo must not write: the installed package's, or one this user cannot write?
    (A source checkout's ``models/`` is writable: it is where the shipped models are made.)"""
    root = Path(root)
    if root.resolve() == installed_store():
        return True
    existing = next((p for p in (root, *root.parents) if p.exists()), None)  # a new folder: its nearest parent
    return existing is not None and not os.access(existing, os.W_OK | os.X_OK)


def write_root_for(root: Path) -> Path:
    """Where a change to a model found in ``root`` is written (eval's metrics, a card, a quantized twin):
    ``root`` itself, unless it is read-only; then ``$CONVZOO_HOME`` or the user store, which the search
    reads before the shipped models, so the changed copy is the one found from then on."""
    if not read_only(root):
        return Path(root)
    return next((r for r in (write_root(), user_store()) if not read_only(r)), user_store())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredModel:
    """A model folder in a store: its files and its (validated) manifest."""

    name: str
    folder: Path
    manifest: Mapping[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE

    @functools.cached_property
    def entry(self) -> ModelEntry:
        """The typed entry the model was exported from (``check_manifest`` has validated it)."""
        return ModelEntry.from_json(self.manifest["entry"])

    @property
    def task(self) -> str:
        return self.entry.task

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
        try:
            actual = _cached_sha256(self.onnx_path)
        except OSError as e:
            raise IntegrityError(f"{self.name}: cannot read {self.onnx_path} ({e.strerror}); fix its permissions "
                                 "or export it again") from None
        if actual != self.sha256:
            raise IntegrityError(
                f"{self.name}: {self.onnx_path} has sha256 {actual[:12]}..., but its manifest says {self.sha256[:12]}...; "
                f"the file is corrupt or was changed: export or download it again")


@dataclass(frozen=True)
class BrokenModel:
    """A folder in a store that is not a whole model, and why; reported, never fatal to the others."""

    name: str
    folder: Path
    reason: str


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def check_manifest(name: str, manifest: Any) -> Mapping[str, Any]:
    """The one schema of ``model.json``; raises ``IntegrityError`` naming the first thing wrong."""
    def wrong(what: str) -> IntegrityError:
        return IntegrityError(f"{name}: {MANIFEST_FILE} {what}; export the model again")

    if not isinstance(manifest, dict):
        raise wrong(f"must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("name") != name:
        raise wrong(f"names {manifest.get('name')!r}, but its folder is {name!r}")
    entry = manifest.get("entry")
    if not isinstance(entry, dict):
        raise wrong("has no 'entry' object")
    if entry.get("task") not in TASKS:
        raise wrong(f"entry.task must be one of {', '.join(TASKS)}, got {entry.get('task')!r}")
    sha = manifest.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise wrong("has no sha256 of 64 hex digits")
    size = manifest.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise wrong(f"size_bytes must be a byte count, got {size!r}")
    for key in ("metrics", "source"):
        if not isinstance(manifest.get(key, {}), dict):
            raise wrong(f"'{key}' must be an object, got {type(manifest[key]).__name__}")
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise wrong("entry.labels must be a list of strings")
    try:
        ModelEntry.from_json(entry)
    except EntryError as e:
        raise wrong(f"has an invalid entry ({e})") from None
    return manifest


def read_folder(name: str, folder: Path) -> StoredModel:
    """The model in ``folder``, its manifest checked against the schema and its file present;
    ``IntegrityError`` with the reason otherwise (the sha256 is checked when the model is loaded)."""
    manifest_path = folder / MANIFEST_FILE
    try:
        text = manifest_path.read_text()
    except FileNotFoundError:
        raise IntegrityError(f"{name}: {folder} has no {MANIFEST_FILE} (an interrupted write?); export the model "
                             "again") from None
    except OSError as e:
        raise IntegrityError(f"{name}: cannot read {manifest_path} ({e.strerror}); fix its permissions or export "
                             "the model again") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise IntegrityError(f"{name}: {manifest_path} is not valid JSON ({e}); export the model again") from None
    check_manifest(name, manifest)
    onnx_path = folder / ONNX_FILE
    if onnx_path.is_dir() or (onnx_path.exists() and not onnx_path.is_file()):
        raise IntegrityError(f"{name}: {onnx_path} is not a regular file; export the model again")
    if not onnx_path.exists():
        raise IntegrityError(f"{name}: {onnx_path} is missing; export the model again")
    if not os.access(onnx_path, os.R_OK):
        raise IntegrityError(f"{name}: cannot read {onnx_path} (permission denied); fix its permissions or export "
                             "the model again")
    return StoredModel(name, folder, manifest)


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

    def _candidates(self) -> Iterator[tuple[str, Path]]:
        """(name, folder) for every folder that is, or tries to be, a model; the first root wins."""
        seen: set[str] = set()
        for root in self.roots:
            with contextlib.suppress(OSError):  # a killed writer's retired model comes back before we look
                clean_stale(root)
            try:
                children = sorted(root.iterdir())
            except OSError:  # a root that is missing or unreadable holds nothing for us
                continue
            for folder in children:
                if folder.name in seen or not NAME_PATTERN.match(folder.name):
                    continue
                try:
                    if not folder.is_dir():
                        continue
                    looks_like_model = (folder / MANIFEST_FILE).exists() or (folder / ONNX_FILE).exists()
                except OSError:
                    looks_like_model = True
                if not looks_like_model:
                    try:
                        looks_like_model = not os.access(folder, os.R_OK | os.X_OK)
                    except OSError:
                        looks_like_model = True
                if looks_like_model:
                    seen.add(folder.name)
                    yield folder.name, folder

    def scan(self) -> list[StoredModel | BrokenModel]:
        """Every model folder: whole ones as ``StoredModel``, the others as ``BrokenModel`` with the reason."""
        found: list[StoredModel | BrokenModel] = []
        for name, folder in self._candidates():
            try:
                found.append(read_folder(name, folder))
            except IntegrityError as e:
                found.append(BrokenModel(name, folder, str(e)))
            except OSError as e:
                found.append(BrokenModel(name, folder, f"{name}: cannot read {folder} ({e.strerror})"))
        return found

    def broken(self) -> list[BrokenModel]:
        return [m for m in self.scan() if isinstance(m, BrokenModel)]

    def find(self, name: str) -> StoredModel | None:
        """The model, or None when no root holds a folder for it; ``IntegrityError`` when the folder is broken."""
        validate_name(name)
        for root in self.roots:
            folder = root / name
            with contextlib.suppress(OSError):
                clean_stale(root, name)
            try:
                present = folder.is_dir() and ((folder / MANIFEST_FILE).exists() or (folder / ONNX_FILE).exists()
                                               or not os.access(folder, os.R_OK | os.X_OK))
            except OSError:
                present = True
            if present:
                try:
                    return read_folder(name, folder)
                except OSError as e:
                    raise IntegrityError(f"{name}: cannot read {folder} ({e.strerror}); fix its permissions or "
                                         "export the model again") from None
        return None

    def get(self, name: str) -> StoredModel:
        stored = self.find(name)
        if stored is None:
            known = name in names()
            close = difflib.get_close_matches(name, set(names()) | set(self.names()), n=3, cutoff=0.6)
            how = (f"train and export it: `convzoo train {name}` then `convzoo export {name}`" if known
                   else (f"did you mean {', '.join(close)}? " if close else "")
                   + "`convzoo list` shows the models convzoo knows")
            raise ModelNotInStoreError(f"{name!r} is not in the store ({', '.join(map(str, self.roots))}); {how}")
        return stored

    def models(self, task: str | None = None) -> list[StoredModel]:
        """The whole models (a broken folder is left out: ``scan`` and ``broken`` report it)."""
        return [m for m in self.scan() if isinstance(m, StoredModel) and (task is None or m.task == task)]

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


# ----------------------------------------------------------------------------------------------
# the one atomic swap, and what a killed writer leaves behind
#
# A writer builds the whole new folder in ``root/.NAME.staging-PID-xxxx`` and swaps it in. Where the
# kernel allows (Linux renameat2 RENAME_EXCHANGE) the swap is one atomic step; elsewhere it is two
# renames through ``root/.NAME.old-PID-xxxx/NAME``, and a kill between them is undone by the next
# writer or reader of the root (``clean_stale``). Writers hold the root's lock (flock on the root
# folder itself, so no lock file is left) while their staging folder exists: whoever gets the lock
# knows that every staging or retired folder it sees was left by a writer that is gone.

_RENAME_EXCHANGE, _AT_FDCWD = 2, -100
_LEFTOVER = re.compile(r"^\.(?P<name>[a-z0-9][a-z0-9_-]{0,63})\.(?P<kind>staging|old)-.+$")
_held = threading.local()  # the roots whose lock this thread holds: a nested write does not wait on itself
_ours: set[str] = set()  # this process's staging and retired folders in use: never tidied, even by a nested scan


def _renameat2() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a libc older than glibc 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # an old kernel, or a file system without exchange
    raise OSError(error, os.strerror(error), str(a))


@contextlib.contextmanager
def _root_lock(root: Path, wait: bool = True) -> Iterator[str]:
    """Hold ``root``'s write lock; yields "held", "busy" (another writer has it; only without ``wait``)
    or "unsupported" (no advisory locks here: the pid in a leftover's name decides)."""
    if fcntl is None:
        yield "unsupported"
        return
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield "unsupported"
        return
    try:
        key = (os.fstat(fd).st_dev, os.fstat(fd).st_ino)
        held = _held.__dict__.setdefault("roots", set())
        if key in held:
            yield "held"
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield "busy"
            return
        except OSError:  # e.g. NFS refuses flock on a folder
            yield "unsupported"
            return
        held.add(key)
        try:
            yield "held"
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # releases the flock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(folder: Path) -> bool:
    """Without locks: is the writer named in ``.NAME.staging-PID-xxxx`` still running? (A reused pid
    keeps a leftover until that process ends; it never makes a live writer's folder look stale.)"""
    tail = folder.name.rsplit(".", 1)[-1].split("-")
    pid = int(tail[1]) if len(tail) >= 3 and tail[1].isdigit() else None
    return pid is not None and (pid == os.getpid() or _pid_alive(pid))


def _leftovers(root: Path, name: str | None = None) -> list[tuple[str, str, Path]]:
    """(name, "staging" or "old", folder) for the staging and retired folders in ``root``; nothing else
    in a root (a model, ``.git``, a user's own dot-folder, a symlink) is ever one of them."""
    try:
        children = list(os.scandir(root))
    except OSError:
        return []
    found = []
    for child in children:
        match = _LEFTOVER.match(child.name)
        if match and (name is None or match["name"] == name) and child.is_dir(follow_symlinks=False):
            found.append((match["name"], match["kind"], Path(child.path)))
    return sorted(found, key=lambda leftover: (leftover[1] != "old", leftover[2].name))  # restore, then remove


def clean_stale(root: Path, name: str | None = None) -> list[str]:
    """Tidy what killed writers left in ``root`` (for ``name``, or for every model): bring back a retired
    model whose replacement never arrived, and remove staging and retired folders. Skipped while
    another writer holds the root. Returns what it did, one line each."""
    root = Path(root)
    done: list[str] = []
    if not _leftovers(root, name):
        return done
    with _root_lock(root, wait=False) as lock:
        if lock == "busy":
            return done  # that writer tidies the root itself
        for model, kind, folder in _leftovers(root, name):
            if str(folder) in _ours or (lock == "unsupported" and _writer_alive(folder)):
                continue
            retired = folder / model
            if kind == "old" and not os.path.lexists(root / model) and retired.is_dir() and not retired.is_symlink():
                os.replace(retired, root / model)  # a kill between the two renames: the old model comes back
                done.append(f"restored {model} from {folder.name}")
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.lexists(folder):  # a root we may not write keeps it, and says nothing
                done.append(f"removed {folder.name}")
    return done


def install_folder(staging: Path, final: Path) -> None:
    """Put a complete folder in place of ``final`` in one atomic step; what was there is removed."""
    with _root_lock(final.parent):
        if not os.path.lexists(final):
            os.replace(staging, final)
            return
        if _exchange(staging, final):
            shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous version
            return
        retired = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-{os.getpid()}-"))
        _ours.add(str(retired))
        try:
            os.replace(final, retired / final.name)
            try:
                os.replace(staging, final)  # a kill just before this line is undone by clean_stale
            except BaseException:
                os.replace(retired / final.name, final)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            _ours.discard(str(retired))


@contextlib.contextmanager
def staged_model_folder(root: Path, name: str) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``root/name`` in one atomic swap.

    The manifest is written last by the caller, and a folder without a manifest is not a model,
    so a kill at any point leaves either the old model or the new one, never half of one. The
    root's lock is held throughout: keep the slow work (training, evaluation) outside.
    """
    validate_name(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _root_lock(root):
        clean_stale(root)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.staging-{os.getpid()}-"))
        _ours.add(str(staging))
        try:
            staging.chmod(0o755)  # mkdtemp makes 0700
            yield staging
            install_folder(staging, root / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            _ours.discard(str(staging))


def publish_folder(source: Path, root: Path, name: str) -> StoredModel:
    """Copy a whole model folder built elsewhere (``source``) into ``root/name`` in one atomic swap;
    a folder that is not a whole model (manifest schema, file, sha256) never enters the store."""
    with staged_model_folder(root, name) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True, copy_function=shutil.copy2)
        read_folder(name, staging).verify()
    return read_folder(name, Path(root) / name)
