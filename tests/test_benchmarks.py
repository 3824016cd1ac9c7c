"""The serving benchmarks run from a checkout and print their tables (their figures are measured by running them,
never asserted here: these machines are shared and noisy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, timeout: int) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_serving_profile_prints_every_stage_beside_the_earlier_way():
    out = run("benchmarks/serving_profile.py", "--models", "lenet5-fashion", "--repeats", "20", timeout=300)
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| lenet5-fashion")]
    assert len(rows) == 12  # six stages, JSON and binary
    parse, whole = (next(r for r in rows if r[1] == "json" and r[2].startswith(s)) for s in ("parse", "whole app"))
    for row in (parse, whole):  # both ways were measured, as numbers
        assert re.fullmatch(r"[\d,]+", row[3]) and re.fullmatch(r"[\d,]+ \|", row[4])


@pytest.mark.slow
def test_serving_peers_runs_both_servers_on_the_same_images_and_prints_the_table():
    """From a checkout: creates .venv-mlserver/ when missing (MLServer from PyPI), checks that convzoo (JSON and
    binary) and MLServer give the same argmax on the model's test images, times a second of each, prints both
    tables."""
    out = run("benchmarks/serving_peers.py", "--quick", "--models", "lenet5-fashion", "--clients", "1", timeout=900)
    assert re.search(r"same argmax on all: lenet5-fashion \[\d(, \d){7}\]", out)
    measured = {tuple(cell.strip() for cell in line.split("|")[3:5]) for line in out.splitlines()
                if line.startswith("| lenet5-fashion | 1 |")}
    assert measured == {("convzoo", "json"), ("convzoo", "binary"), ("MLServer", "json")}
    assert "errors: 0" in out
    goals = [line for line in out.splitlines()
             if line.startswith("| lenet5-fashion | ") and line.endswith(("yes |", "no |"))]
    assert len(goals) == 4


def _time_to_accuracy():
    import importlib.util

    spec = importlib.util.spec_from_file_location("time_to_accuracy", ROOT / "benchmarks" / "time_to_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_to_accuracy_takes_the_first_epoch_at_the_threshold_and_skips_a_partial_one(tmp_path):
    tta = _time_to_accuracy()
    history = [{"epoch": 1, "seconds": 60.0, "test_accuracy": 0.915, "partial": False},
               {"epoch": 2, "seconds": 130.0, "test_accuracy": 0.931, "partial": False},
               {"epoch": 3, "seconds": 200.0, "test_accuracy": 0.928, "partial": False},
               {"epoch": 4, "seconds": 230.0, "test_accuracy": 0.99, "partial": True}]
    (tmp_path / "metrics.json").write_text(__import__("json").dumps(history))
    summary = tta.summarise(tmp_path)
    assert summary["reached"] == {"0.92": (130.0, 2), "0.93": (130.0, 2), "0.94": None}
    assert summary["epochs"] == 3 and summary["best_test_accuracy"] == 0.931
    assert "2.2 min (epoch 2)" in tta.table([summary]) and "not reached" in tta.table([summary])
    # a road timed whole: what the loop's seconds leave out (data, a teacher's logits) is added to each time
    (tmp_path / "road.json").write_text('{"road": "fast", "wall_seconds": 290.0}')
    timed = tta.summarise(tmp_path)
    assert timed["setup_seconds"] == 90.0 and timed["reached"]["0.92"] == (220.0, 2) and timed["seconds"] == 290.0


def test_time_to_accuracy_roads_start_from_random_weights_and_only_the_fast_one_has_a_teacher():
    from convzoo.registry import get

    tta = _time_to_accuracy()
    vgg = get("vgg16-fashion").recipe
    assert "init_from" in vgg.options and "teacher" in vgg.options  # else this test checks nothing
    old, fast = (tta.road_recipe(vgg, road, 7) for road in ("old", "fast"))
    assert "init_from" not in old.options and "init_from" not in fast.options
    assert "teacher" not in old.options and fast.options["teacher"] == vgg.options["teacher"]
    assert old.epochs == fast.epochs == 7 and old.lr == fast.lr == vgg.lr and old.augment == vgg.augment
    assert tta.road_recipe(vgg, "fast", None).epochs == vgg.epochs


@pytest.mark.slow
def test_time_to_accuracy_trains_both_roads_and_prints_their_table(tmp_path, fashion_dir):
    out = run("benchmarks/time_to_accuracy.py", "--results", str(tmp_path / "tta.json"), "train", "lenet5-fashion",
              "--epochs", "1", "--out", str(tmp_path / "runs"), "--data-dir", str(fashion_dir), timeout=600)
    rows = [line for line in out.splitlines() if line.startswith(f"| {tmp_path}")]
    assert [r.split(" | ")[0].rsplit("/", 2)[-2] for r in rows] == ["old", "fast"]
    assert all(" | 1 | " in r for r in rows)  # one finished epoch each, read from the run's own metrics.json
    assert all((tmp_path / "runs" / road / "lenet5-fashion" / "road.json").exists() for road in ("old", "fast"))
