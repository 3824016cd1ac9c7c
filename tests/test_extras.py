"""Extras that tell (issue 24): a missing optional module ends in one sentence naming the extra that brings it and
a non-zero exit, for every command and for ``convzoo.load``; the extras table agrees with pyproject.toml; and
`convzoo eval` measures without onnx or matplotlib, saying what it skipped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from convzoo import extras

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# distribution -> the module convzoo imports
MODULES = {"scikit-image": "skimage", "prometheus-client": "prometheus_client", "python-multipart": "multipart",
           "onnxruntime-gpu": "onnxruntime"}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", r)[0].lower().replace("_", "-") for r in requirements}


def test_the_base_install_is_lean():
    assert requirement_names(PROJECT["dependencies"]) == {"numpy", "pillow", "rich"}


@pytest.mark.parametrize("extra", sorted(set(PROJECT["optional-dependencies"]) - {"dev"}))
def test_the_extras_table_agrees_with_pyproject(extra):
    declared = {MODULES.get(name, name.replace("-", "_")) for name in
                requirement_names(PROJECT["optional-dependencies"][extra])}
    brought_along = {"starlette", "httptools"}  # by fastapi and uvicorn[standard]: named for their import errors
    assert declared == set(extras.EXTRAS[extra]) - brought_along


def test_every_module_a_command_needs_belongs_to_an_extra():
    for command, (modules, _, extra) in extras.NEEDS.items():
        for module in modules:
            assert extras.optional(module), (command, module)
            assert extra is None or module in extras.EXTRAS[extra] or extras.extra_for(module, command), command


def run_without(modules: list[str], code: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    block = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    return subprocess.run([sys.executable, "-c", f"import sys; {block}\n{code}"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def cli(argv: list[str]) -> str:
    return f"from convzoo.cli import main; sys.exit(main({argv!r}))"


@pytest.mark.parametrize("missing, argv, extra", [
    ("uvicorn", ["serve"], "serve"),
    ("fastapi", ["serve"], "serve"),
    ("onnxruntime", ["serve"], "cpu"),  # the serve extra is there: only the runtime is named
    ("gradio", ["demo"], "demo"),
    ("onnxruntime", ["eval", "lenet5-fashion"], "cpu"),
    ("onnx", ["quantize", "lenet5-fashion"], "eval"),
    ("onnx", ["triton", "out"], "eval"),
    ("huggingface_hub", ["card", "lenet5-fashion"], "eval"),
    ("huggingface_hub", ["push", "lenet5-fashion", "--repo", "a/b"], "hub"),
    ("huggingface_hub", ["pull", "a/b"], "hub"),
    ("torch", ["train", "lenet5-fashion", "--max-steps", "1"], "train"),
    ("torch", ["export", "lenet5-fashion"], "train"),
])
def test_a_missing_extra_is_one_sentence_and_exit_2(missing, argv, extra, tmp_path):
    done = run_without([missing], cli(argv), cwd=tmp_path, env={"CONVZOO_HOME": str(tmp_path / "home")})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"convzoo: error: `convzoo {argv[0]}` needs ") and f"pip install 'convzoo[{extra}" in line
    assert extras.DISTRIBUTIONS.get(missing, missing) in line


def test_convzoo_load_without_onnxruntime_names_the_extra():
    done = run_without(["onnxruntime"], "import convzoo; convzoo.load('lenet5-fashion')")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("convzoo.extras.MissingExtraError: convzoo.load needs onnxruntime, which is not installed here: "
                    "pip install 'convzoo[cpu]' (or 'convzoo[gpu]' for CUDA)")
    caught = run_without(["onnxruntime"], "import convzoo\ntry:\n    convzoo.list_models()\n"
                                          "except ImportError as e:\n    print(type(e).__name__, e.name)")
    assert caught.stdout.strip() == "MissingExtraError onnxruntime"  # an ImportError, as Python code expects


def test_the_sentence_names_every_missing_module_of_the_command():
    error = extras.missing("uvicorn", "serve")
    assert str(error).startswith("`convzoo serve` needs uvicorn") and "pip install 'convzoo[" in str(error)
    assert isinstance(error, ImportError) and error.name == "uvicorn"


def test_an_import_error_that_is_not_an_extra_stays_a_traceback(tmp_path):
    done = run_without([], "import builtins\nreal = builtins.__import__\n"
                           "def fake(name, *a, **k):\n"
                           "    if name == 'convzoo.doctor': raise ModuleNotFoundError('no', name='convzoo.doctor')\n"
                           "    return real(name, *a, **k)\n"
                           "builtins.__import__ = fake\n" + cli(["doctor"]), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr  # a broken install is a bug to see, not an extra


@pytest.fixture
def tiny_copy(tiny_store, tmp_path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(tiny_store.get("tiny-fashion").folder, store / "tiny-fashion")
    return store


@pytest.mark.slow
def test_eval_without_matplotlib_records_the_metrics_and_skips_the_plot(tiny_copy, fashion_dir):
    done = run_without(["matplotlib"], cli(["eval", "tiny-fashion", "--store", str(tiny_copy), "--data-dir",
                                            str(fashion_dir)]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["n"] == 10000
    assert "confusion.png not drawn: matplotlib is not installed (pip install 'convzoo[eval]')" in done.stderr
    manifest = json.loads((tiny_copy / "tiny-fashion" / "model.json").read_text())
    assert manifest["metrics"]["n"] == 10000 and "confusion_png" not in manifest["metrics"]
    assert not (tiny_copy / "tiny-fashion" / "confusion.png").exists()


@pytest.mark.slow
def test_eval_without_onnx_measures_and_says_it_did_not_record(tiny_copy, fashion_dir):
    before = (tiny_copy / "tiny-fashion" / "model.json").read_text()
    done = run_without(["onnx", "huggingface_hub"], cli(["eval", "tiny-fashion", "--store", str(tiny_copy),
                                                         "--data-dir", str(fashion_dir)]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accuracy" in json.loads(done.stdout)
    assert "the metrics are not recorded in the store" in done.stderr and "convzoo[eval]" in done.stderr
    assert (tiny_copy / "tiny-fashion" / "model.json").read_text() == before
