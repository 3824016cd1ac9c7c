"""The store after faults: a broken folder is reported with its reason and never hides the others, and
a writer killed at any moment (at every rename, or at a random instant) leaves no half-written model:
every listed model loads and matches its sha256, and it is the old version or the new one.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convzoo import registry
from convzoo.errors import IntegrityError
from convzoo.registry import BrokenModel, Store, StoredModel
from convzoo.runtime import load_model

ROOT = Path(__file__).resolve().parent.parent

# A writer in a child process; os.replace and the atomic exchange are wrapped so that the child dies
# (os._exit, as a SIGKILL would leave it) just before, or just after, its k-th rename.
CHILD = r"""
import os, sys, dataclasses
from pathlib import Path
sys.path.insert(0, {tests!r})
op, root, k, when = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
from convzoo import registry
calls = [0]
def dying(real):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k and when == "before":
            os._exit(9)
        result = real(*args, **kwargs)
        if calls[0] == k and when == "after":
            os._exit(9)
        return result
    return wrapped
os.replace = dying(os.replace)
registry._exchange = dying(registry._exchange)
store = registry.Store(root)
if op == "export":
    from tinystore import tiny_classifier
    from convzoo.packaging import write_model
    entry = dataclasses.replace(registry.get("lenet5-fashion"), name="tiny-fashion")
    write_model(root, entry, tiny_classifier(1, (28, 28), 10, seed=7), metrics={{}}, manifest_extra={{}}, source={{}})
elif op == "metrics":
    from convzoo.packaging import update_manifest
    update_manifest(store.get("tiny-fashion"), {{"note": "new"}}, metrics={{"accuracy": 0.5}})
elif op == "eval":
    from convzoo.evaluation import evaluate
    evaluate("lenet5-fashion", store=store, data_dir=sys.argv[5])
elif op == "quantize":
    from convzoo.export.quantize import quantize
    quantize("lenet5-fashion", store=store, data_dir=sys.argv[5], calibration_images=64)
print("renames", calls[0])
"""


def run_child(op: str, root: Path, k: int, when: str, data_dir: Path | None = None,
              kill_after: float | None = None) -> subprocess.CompletedProcess | None:
    code = CHILD.format(tests=str(ROOT / "tests"))
    args = [sys.executable, "-c", code, op, str(root), str(k), when] + ([str(data_dir)] if data_dir else [])
    if kill_after is None:
        return subprocess.run(args, capture_output=True, text=True, timeout=300)
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    return None


def whole(root: Path, expected: dict[str, set[str]]) -> None:
    """Every folder is a whole model that loads (sha256 checked), and each named one is there, old or new."""
    found = Store(root).scan()
    broken = [m for m in found if isinstance(m, BrokenModel)]
    assert not broken, broken
    for name, allowed in expected.items():
        stored = Store(root).get(name)
        assert stored.sha256 in allowed, (name, stored.sha256)
        load_model(name, Store(root))


def stale(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".")]


def count_renames(op: str, root: Path, data_dir: Path | None = None) -> tuple[int, str]:
    """Run ``op`` to the end on a copy; how many renames it makes, and the sha256 it leaves."""
    probe = root.parent / f"{root.name}-probe"
    shutil.copytree(root, probe)
    done = run_child(op, probe, 0, "never", data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    name = "lenet5-fashion-int8" if op == "quantize" else ("lenet5-fashion" if op == "eval" else "tiny-fashion")
    return int(done.stdout.split()[-1]), Store(probe).get(name).sha256


KILLS: list[str] = []


@pytest.mark.slow
@pytest.mark.parametrize("op", ["export", "metrics"])
def test_a_kill_at_every_rename_leaves_old_or_new_never_half(tiny_store, tmp_path, op):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    old = Store(root).get("tiny-fashion").sha256
    renames, new = count_renames(op, root)
    assert renames >= 3
    for k in range(1, renames + 1):
        for when in ("before", "after"):
            trial = tmp_path / f"trial-{k}-{when}"
            shutil.copytree(root, trial)
            result = run_child(op, trial, k, when)
            assert result.returncode == 9, result.stderr[-2000:]
            whole(trial, {"tiny-fashion": {old, new}})
            KILLS.append(f"{op} {when} rename {k}")
            finished = run_child(op, trial, 0, "never")  # the next write tidies what the kill left
            assert finished.returncode == 0, finished.stderr[-2000:]
            whole(trial, {"tiny-fashion": {new}})
            assert stale(trial) == [], stale(trial)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["eval", "quantize"])
def test_a_kill_at_random_moments_of_eval_and_quantize_leaves_whole_models(shipped_store, fashion_dir, tmp_path, op):
    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(shipped_store.roots[0] / "lenet5-fashion", root / "lenet5-fashion")
    old = Store(root).get("lenet5-fashion").sha256
    start = time.monotonic()
    renames, new = count_renames(op, root, fashion_dir)
    duration = time.monotonic() - start
    rng = random.Random(0)
    for k in range(1, renames + 1):  # at each rename
        trial = tmp_path / f"trial-{k}"
        shutil.copytree(root, trial)
        run_child(op, trial, k, rng.choice(["before", "after"]), fashion_dir)
        expected = {"lenet5-fashion": {old, new if op == "eval" else old}}
        whole(trial, expected)
        KILLS.append(f"{op} at rename {k}")
    for i in range(4):  # and at random instants
        trial = tmp_path / f"random-{i}"
        shutil.copytree(root, trial)
        run_child(op, trial, 0, "never", fashion_dir, kill_after=rng.uniform(0.2, duration))
        whole(trial, {"lenet5-fashion": {old, new if op == "eval" else old}})
        KILLS.append(f"{op} at random")


def test_kill_points_were_tried():
    print(f"\nkill points tried: {len(KILLS)}, half-written models: 0")
    if KILLS:
        assert len(KILLS) >= 20


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
    assert "0.9144" in listing.stdout or "lenet5-fashion" in listing.stdout
    evaluation = subprocess.run([sys.executable, "-m", "convzoo.cli", "eval", "vgg16-fashion", "--store", str(root)],
                                capture_output=True, text=True, timeout=120)
    assert evaluation.returncode == 2
    assert "Traceback" not in evaluation.stderr and "must be a JSON object" in evaluation.stderr


def test_a_retired_model_whose_replacement_never_arrived_is_restored(tiny_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    before = Store(root).get("tiny-fashion").sha256
    retired = root / ".tiny-fashion.old-999999999-x"
    retired.mkdir()
    (root / "tiny-fashion").rename(retired / "tiny-fashion")  # a kill between the two renames of the fallback
    registry.clean_stale(root, "tiny-fashion")
    assert Store(root).get("tiny-fashion").sha256 == before
    assert stale(root) == []


def test_the_app_builds_and_offers_the_whole_models_beside_broken_folders(store_with_broken_folders):
    from convzoo.demos.app import build_app
    from convzoo.demos.common import model_choices

    build_app(store_with_broken_folders)  # a broken folder never stops the demo
    offered = {value for _, value in model_choices(store_with_broken_folders, "classification")}
    assert offered == {"tiny-fashion", "tiny-cifar"}
