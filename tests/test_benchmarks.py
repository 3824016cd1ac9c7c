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
