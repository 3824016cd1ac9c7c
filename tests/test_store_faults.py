"""The store after faults: a broken folder is reported with its reason and never hides the others, and
a writer killed at any moment (at every rename, or at a random instant) leaves no half-written model:
every listed model loads and matches its sha256, and it is the old version or the new one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from convzoo import registry
from convzoo.errors import IntegrityError
from convzoo.packaging import update_manifest
from convzoo.registry import BrokenModel, Store, StoredModel
from convzoo.runtime import load_model

ROOT = Path(__file__).resolve().parent.parent

# A writer in a child process. os.replace and the atomic exchange are wrapped so that the child dies
# (os._exit: no finally, no cleanup, as a SIGKILL would leave it) just before, or just after, its k-th
# rename; each rename's wall-clock time goes to stderr, so that random kills can aim at the window in
# which the store is written. Mode "fallback" turns the exchange off: the two-rename swap is tried.
CHILD = r"""
import os, sys, time, dataclasses
from pathlib import Path
sys.path.insert(0, {tests!r})
op, root, k, when, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
data_dir = sys.argv[6] if len(sys.argv) > 6 else None
from convzoo import registry
calls = [0]
def dying(real):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        print("rename-at", time.time(), file=sys.stderr, flush=True)
        if calls[0] == k and when == "before":
            os._exit(9)
        result = real(*args, **kwargs)
        if calls[0] == k and when == "after":
            os._exit(9)
        return result
    return wrapped
os.replace = dying(os.replace)
registry._exchange = dying(registry._exchange) if mode == "exchange" else (lambda a, b: False)
store = registry.Store(root)
if op in ("export", "fresh"):
    from tinystore import tiny_classifier
    from convzoo.packaging import write_model
    name = "tiny-fashion" if op == "export" else "tiny-fresh"
    entry = dataclasses.replace(registry.get("lenet5-fashion"), name=name)
    write_model(root, entry, tiny_classifier(1, (28, 28), 10, seed=7), metrics={{}}, manifest_extra={{}}, source={{}})
elif op == "metrics":
    from convzoo.packaging import update_manifest
    update_manifest(store.get("tiny-fashion"), {{"note": "new"}}, metrics={{"accuracy": 0.5}})
elif op == "eval":
    from convzoo.evaluation import evaluate
    evaluate("lenet5-fashion", store=store, data_dir=data_dir)
elif op == "quantize":
    from convzoo.export.quantize import quantize
    quantize("lenet5-fashion", store=store, data_dir=data_dir, calibration_images=64, require_speedup=False)
print("renames", calls[0])
"""

# What each writer writes, and whether a model of that name existed before it.
TARGET = {"export": "tiny-fashion", "fresh": "tiny-fresh", "metrics": "tiny-fashion", "eval": "lenet5-fashion",
          "quantize": "lenet5-fashion-int8"}
KILLS: list[str] = []  # every kill point tried, across the tests of this module


def child_args(op: str, root: Path, k: int, when: str, mode: str, data_dir: Path | None) -> list[str]:
    code = CHILD.format(tests=str(ROOT / "tests"))
    return [sys.executable, "-c", code, op, str(root), str(k), when, mode] + ([str(data_dir)] if data_dir else [])


def child_env(root: Path) -> dict[str, str]:
    scratch = root.parent / f"{root.name}-tmp"  # quantize's private store: kept out of /tmp, removed by pytest
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(scratch)}


def run_child(op: str, root: Path, k: int, when: str, mode: str = "exchange",
              data_dir: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(child_args(op, root, k, when, mode, data_dir), capture_output=True, text=True, timeout=300,
                          env=child_env(root))


def kill_at(op: str, root: Path, seconds: float, data_dir: Path | None = None) -> None:
    """Start the writer and SIGKILL it ``seconds`` after it started (it may finish first)."""
    child = subprocess.Popen(child_args(op, root, 0, "never", "exchange", data_dir), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=child_env(root))
    time.sleep(seconds)
    child.send_signal(signal.SIGKILL)
    child.wait(30)


def stale(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def version(root: Path, name: str, old: str | None, new: str | None) -> str:
    """What a kill left of ``name``, checked as a user sees it: "old", "new" or "absent" (only when there
    was no old one). Every folder in the store must be whole and load (sha256 checked on load), and
    the first reader tidies what the kill left, so nothing stale remains."""
    store = Store(root)
    found = store.scan()
    assert not [m for m in found if isinstance(m, BrokenModel)], found
    for model in found:
        load_model(model.name, store)
    assert stale(root) == [], stale(root)
    stored = store.find(name)
    if stored is None:
        assert old is None, f"{name} went missing although an old version existed"
        return "absent"
    if stored.sha256 == old:
        return "old"
    if new is None:  # a quantized twin records its date, so each run's file differs: it must be whole and measured
        assert "int8_accuracy" in stored.manifest["quantization"] and "accuracy" in stored.metrics, stored.manifest
    else:
        assert stored.sha256 == new, (name, stored.sha256, old, new)
    return "new"


def probe(op: str, root: Path, data_dir: Path | None = None) -> tuple[dict[str, int], str, tuple[float, float]]:
    """Run ``op`` to the end on copies, in both modes: how many renames it makes, the sha256 it
    leaves, and when (seconds after the start) it first and last renamed."""
    renames = {}
    for mode in ("exchange", "fallback"):
        copy = root.parent / f"{root.name}-probe-{mode}"
        shutil.copytree(root, copy)
        started = time.time()
        done = run_child(op, copy, 0, "never", mode, data_dir)
        assert done.returncode == 0, done.stderr[-3000:]
        renames[mode] = int(done.stdout.split()[-1])
        times = [float(line.split()[1]) - started for line in done.stderr.splitlines() if line.startswith("rename-at")]
        window = (times[0], times[-1])
        new = Store(copy).get(TARGET[op]).sha256
    return renames, new, window


def kill_everywhere(op: str, root: Path, tmp_path: Path, data_dir: Path | None = None, random_kills: int = 6) -> Counter:
    """Kill ``op`` before and after each of its renames (both swap modes) and at random instants around
    the window in which it writes; every outcome is the old model or the new one."""
    name = TARGET[op]
    old = Store(root).find(name).sha256 if Store(root).find(name) else None
    renames, new, (first, last) = probe(op, root, data_dir)
    new = None if op == "quantize" else new
    assert renames["exchange"] >= 3 and renames["fallback"] >= renames["exchange"], renames
    outcomes: Counter = Counter()
    for mode, count in renames.items():
        for k in range(1, count + 1):
            for when in ("before", "after"):
                trial = tmp_path / f"{mode}-{k}-{when}"
                shutil.copytree(root, trial)
                result = run_child(op, trial, k, when, mode, data_dir)
                assert result.returncode == 9, result.stderr[-3000:]
                if mode == "exchange" and old is not None:  # the one atomic swap: never missing, even on disk
                    assert (trial / name / "model.json").is_file(), stale(trial)
                outcomes[version(trial, name, old, new)] += 1
                KILLS.append(f"{op} {mode} {when} rename {k}")
    rng = random.Random(0)
    for i in range(random_kills):
        trial = tmp_path / f"random-{i}"
        shutil.copytree(root, trial)
        kill_at(op, trial, rng.uniform(max(0.0, first - 0.3), last + 0.3), data_dir)
        outcomes[version(trial, name, old, new)] += 1
        KILLS.append(f"{op} at random")
    finished = run_child(op, trial, 0, "never", "exchange", data_dir)  # a later write succeeds after the kill
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert version(trial, name, old, new) == "new" or op == "quantize"
    kills = sum(outcomes.values())
    print(f"\n{op}: {kills} kill points ({renames} renames, before and after each, + {random_kills} random): "
          f"{dict(outcomes)}, half-written models: 0")
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("op", ["export", "fresh", "metrics"])
def test_a_killed_export_or_manifest_update_leaves_the_old_model_or_the_new_one(tiny_store, tmp_path, op):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    outcomes = kill_everywhere(op, root, tmp_path)
    assert outcomes["new"] and (outcomes["old"] or outcomes["absent"]), outcomes  # both sides of the swap were hit


@pytest.mark.slow
@pytest.mark.parametrize("op", ["eval", "quantize"])
def test_a_killed_eval_or_quantize_leaves_the_old_model_or_the_new_one(shipped_store, fashion_dir, tmp_path, op):
    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(shipped_store.roots[0] / "lenet5-fashion", root / "lenet5-fashion")
    if op == "eval":  # the shipped model's metrics are the ones eval finds: start from others, so old != new
        update_manifest(Store(root).get("lenet5-fashion"), {}, metrics={"accuracy": 0.5, "n": 100})
    outcomes = kill_everywhere(op, root, tmp_path, fashion_dir, random_kills=4)
    assert outcomes["new"] and (outcomes["old"] or outcomes["absent"]), outcomes


@pytest.mark.slow
def test_a_refused_int8_twin_never_enters_the_store(shipped_store, fashion_dir, tmp_path, monkeypatch):
    from convzoo.errors import ConvzooError
    from convzoo.export import quantize as quantize_module

    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(shipped_store.roots[0] / "lenet5-fashion", root / "lenet5-fashion")
    quantize_module.quantize("lenet5-fashion", store=Store(root), data_dir=fashion_dir, calibration_images=64,
                             require_speedup=False)  # a twin already in the store
    twin_before = Store(root).get("lenet5-fashion-int8").sha256
    monkeypatch.setattr(quantize_module, "MAX_ACCURACY_DROP", -1.0)  # every twin falls short
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(ConvzooError, match="was not kept"):
        quantize_module.quantize("lenet5-fashion", store=Store(root), data_dir=fashion_dir, calibration_images=64,
                                 require_speedup=False)
    assert Store(root).get("lenet5-fashion-int8").sha256 == twin_before  # the twin that had earned its place stays
    assert stale(root) == [] and [p.name for p in tmp_path.iterdir()] == ["store"]  # the private store is gone too


def test_kill_points_were_tried():
    """Runs last in this module: the total over the kill tests above (pytest -s shows it)."""
    print(f"\nkill points tried: {len(KILLS)}, half-written models: 0")
    ops = {kill.split()[0] for kill in KILLS}
    if ops != set(TARGET):
        pytest.skip("only part of this module ran: the kill points are counted over all of it")
    assert len(KILLS) >= 100, len(KILLS)


# ----------------------------------------------------------------------------------------------
# broken folders


@pytest.fixture
def store_with_broken_folders(tiny_store, tmp_path) -> Store:
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    for name in ("tiny-list", "tiny-types", "tiny-nomanifest", "tiny-dir", "tiny-garbled", "tiny-wrongname"):
        shutil.copytree(root / "tiny-fashion", root / name)
        manifest = json.loads((root / name / "model.json").read_text()) | {"name": name}
        (root / name / "model.json").write_text(json.dumps(manifest))
    (root / "tiny-list" / "model.json").write_text("[]")
    typed = json.loads((root / "tiny-types" / "model.json").read_text()) | {"size_bytes": "big"}
    (root / "tiny-types" / "model.json").write_text(json.dumps(typed))
    (root / "tiny-nomanifest" / "model.json").unlink()
    (root / "tiny-dir" / "model.onnx").unlink()
    (root / "tiny-dir" / "model.onnx").mkdir()
    (root / "tiny-garbled" / "model.json").write_text("{")
    wrong = json.loads((root / "tiny-wrongname" / "model.json").read_text()) | {"name": "tiny-fashion"}
    (root / "tiny-wrongname" / "model.json").write_text(json.dumps(wrong))
    (root / "not-a-model").mkdir()  # an empty folder is not reported: it never tried to be a model
    (root / ".tiny-fashion.staging-1-abc").mkdir()  # left by a killed writer
    return Store(root)


EXPECTED_REASONS = {"tiny-list": "must be a JSON object", "tiny-types": "size_bytes must be a byte count",
                    "tiny-nomanifest": "has no model.json", "tiny-dir": "not a regular file",
                    "tiny-garbled": "not valid JSON", "tiny-wrongname": "but its folder is 'tiny-wrongname'"}


def test_each_broken_folder_is_reported_with_its_reason_and_the_others_list(store_with_broken_folders):
    store = store_with_broken_folders
    broken = {m.name: m.reason for m in store.broken()}
    assert set(broken) == set(EXPECTED_REASONS)
    for name, words in EXPECTED_REASONS.items():
        assert words in broken[name], broken[name]
        with pytest.raises(IntegrityError, match="export the model again"):
            store.get(name)
    assert set(store.names()) == {"tiny-fashion", "tiny-cifar", "tiny-membranes", "tiny-style"}
    assert all(isinstance(m, StoredModel) for m in store.models())
    load_model("tiny-fashion", store)


def test_convzoo_list_and_eval_report_a_broken_folder_without_a_traceback(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    for name in ("lenet5-fashion", "vgg16-fashion"):
        shutil.copytree(registry.shipped_store() / name, root / name)
    (root / "vgg16-fashion" / "model.json").write_text("[]")
    listing = subprocess.run([sys.executable, "-m", "convzoo.cli", "list", "--store", str(root)], capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "broken" in listing.stdout and "must be a JSON object" in listing.stdout
    assert "lenet5-fashion" in listing.stdout
    evaluation = subprocess.run([sys.executable, "-m", "convzoo.cli", "eval", "vgg16-fashion", "--store", str(root)],
                                capture_output=True, text=True, timeout=120)
    assert evaluation.returncode == 2
    assert "Traceback" not in evaluation.stderr and "must be a JSON object" in evaluation.stderr


def test_the_store_is_tidied_when_it_is_read_too(store_with_broken_folders):
    root = store_with_broken_folders.roots[0]  # holds .tiny-fashion.staging-1-abc: pid 1 is alive, yet no writer holds the root
    store_with_broken_folders.scan()
    assert stale(root) == []


@pytest.mark.parametrize("reader", ["scan", "get", "next write"])
def test_a_retired_model_whose_replacement_never_arrived_is_restored(tiny_store, tmp_path, reader):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    before = Store(root).get("tiny-fashion").sha256
    retired = root / f".tiny-fashion.old-{os.getpid()}-x"  # a live pid (as a reused one would be) does not keep it
    retired.mkdir()
    (root / "tiny-fashion").rename(retired / "tiny-fashion")  # a kill between the two renames of the fallback
    (root / ".tiny-cifar.staging-999999999-y").mkdir()
    if reader == "scan":
        assert "tiny-fashion" in Store(root).names()
    elif reader == "next write":
        update_manifest(Store(root).get("tiny-cifar"), {"note": "a later write"})
    assert Store(root).get("tiny-fashion").sha256 == before
    load_model("tiny-fashion", Store(root))
    left = [".tiny-cifar.staging-999999999-y"] if reader == "get" else []  # get tidies the name it looks up
    assert stale(root) == left


def test_tidying_removes_only_convzoo_leftovers(tiny_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    outside = tmp_path / "outside"
    (outside / "tiny-fashion").mkdir(parents=True)
    (outside / "keep").write_text("precious")
    kept = [".git", ".tiny-fashion.backup", ".tiny-fashion.staging", "tiny-fashion.staging-1-a", ".cache"]
    for name in kept:
        (root / name).mkdir()
        (root / name / "file").write_text("precious")
    (root / ".tiny-fashion.old-1-link").symlink_to(outside)  # a symlink that looks like a leftover
    (root / ".tiny-fashion.staging-1-file").write_text("a file, not a folder")
    (root / ".tiny-cifar.staging-1-z").mkdir()
    registry.clean_stale(root)
    Store(root).scan()
    assert stale(root) == sorted([".git", ".tiny-fashion.backup", ".tiny-fashion.staging", ".cache",
                                  ".tiny-fashion.old-1-link", ".tiny-fashion.staging-1-file"])
    assert all((root / name / "file").read_text() == "precious" for name in kept)
    assert (outside / "keep").read_text() == "precious" and (outside / "tiny-fashion").is_dir()
    assert ".tiny-fashion" not in " ".join(Store(root).names()) and "tiny-fashion.staging-1-a" not in Store(root).names()


def test_a_live_writers_staging_folder_is_left_alone(tiny_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    code = ("import sys, time; from pathlib import Path; from convzoo import registry\n"
            "with registry.staged_model_folder(Path(sys.argv[1]), 'tiny-fashion') as staging:\n"
            "    (staging / 'model.onnx').write_bytes(b'half'); print(staging, flush=True); time.sleep(120)\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        staging = Path(writer.stdout.readline().strip())
        assert staging.is_dir()
        Store(root).scan()
        assert registry.clean_stale(root) == [] and staging.is_dir()  # the writer holds the root
        assert "tiny-fashion" in Store(root).names()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    assert "tiny-fashion" in Store(root).names() and not staging.exists()  # gone with its writer
    load_model("tiny-fashion", Store(root))


UNREADABLE = r"""
import json, os, sys
from convzoo.errors import ConvzooError
from convzoo.registry import BrokenModel, Store
from convzoo.runtime import load_model
if os.geteuid() == 0:  # root reads everything: become nobody, once python and convzoo are loaded
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
store = Store(sys.argv[1])
report = {"broken": {m.name: m.reason for m in store.scan() if isinstance(m, BrokenModel)}, "names": store.names(),
          "get": {}}
for name in report["broken"]:
    try:
        load_model(name, store)
    except ConvzooError as e:
        report["get"][name] = type(e).__name__ + ": " + str(e)
print(json.dumps(report))
"""


def test_unreadable_folders_manifests_and_files_are_reported_and_the_others_load(tiny_store):
    root = Path(tempfile.mkdtemp(prefix="convzoo-unreadable-"))  # not under pytest's 0700 tmp: nobody reads it
    try:
        root.chmod(0o755)
        for name in ("tiny-fashion", "tiny-cifar"):
            shutil.copytree(tiny_store.roots[0] / name, root / name)
        for name in ("tiny-noread-folder", "tiny-noread-manifest", "tiny-noread-onnx"):
            shutil.copytree(root / "tiny-fashion", root / name)
            manifest = json.loads((root / name / "model.json").read_text()) | {"name": name}
            (root / name / "model.json").write_text(json.dumps(manifest))
        (root / "tiny-noread-folder").chmod(0o000)
        (root / "tiny-noread-manifest" / "model.json").chmod(0o000)
        (root / "tiny-noread-onnx" / "model.onnx").chmod(0o000)
        done = subprocess.run([sys.executable, "-c", UNREADABLE, str(root)], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.splitlines()[-1])
    finally:
        for folder in (root / "tiny-noread-folder", root / "tiny-noread-manifest" / "model.json",
                       root / "tiny-noread-onnx" / "model.onnx"):
            folder.chmod(0o755)
        shutil.rmtree(root)
    assert report["names"] == ["tiny-cifar", "tiny-fashion"]
    assert set(report["broken"]) == {"tiny-noread-folder", "tiny-noread-manifest", "tiny-noread-onnx"}
    for name, reason in report["broken"].items():
        assert "cannot read" in reason and "permission" in reason.lower(), reason
        assert report["get"][name].startswith("IntegrityError: ") and "cannot read" in report["get"][name]


def test_a_missing_manifest_beside_a_model_file_is_reported_not_hidden(tiny_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    (root / "tiny-cifar" / "model.json").unlink()
    assert [m.name for m in Store(root).broken()] == ["tiny-cifar"]
    assert "tiny-cifar" not in Store(root).names()
    with pytest.raises(IntegrityError, match="has no model.json"):
        load_model("tiny-cifar", Store(root))


def test_the_app_builds_and_offers_the_whole_models_beside_broken_folders(store_with_broken_folders):
    from convzoo.demos.app import build_app
    from convzoo.demos.common import model_choices

    build_app(store_with_broken_folders)  # a broken folder never stops the demo
    offered = {value for _, value in model_choices(store_with_broken_folders, "classification")}
    assert offered == {"tiny-fashion", "tiny-cifar"}
