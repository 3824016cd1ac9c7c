"""Nothing downstream of export needs torch: serving, demos, CLI, registry, runtime and the Space's app.py
import, and the whole app builds, with torch made unimportable (``sys.modules['torch'] = None``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs subprocesses with torch made unimportable

ROOT = Path(__file__).resolve().parent.parent

NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"


def run_without_torch(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-c", NO_TORCH + code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"failed without torch:\n{done.stderr[-4000:]}"
    return done


def test_torch_free_packages_import_without_torch():
    run_without_torch("import convzoo.serving, convzoo.demos, convzoo.cli, convzoo.registry, convzoo.runtime, "
                      "convzoo.convolution, convzoo.demos.playground, convzoo.demos.inside, convzoo.demos.plots, "
                      "convzoo.demos.examples, convzoo.api, convzoo.hub, convzoo.doctor, convzoo.card, "
                      "convzoo.export.triton, convzoo.augment_preview, convzoo.demos.augmentation, "
                      "convzoo.beyond_grid, convzoo.demos.beyond\n"
                      "assert sys.modules['torch'] is None")


def test_space_app_builds_without_torch():
    """app.py at the root: imported (not run), it builds the whole app on the shipped store without torch."""
    done = run_without_torch(
        "import runpy, gradio as gr\n"
        "space = runpy.run_path('app.py', run_name='space')\n"  # not __main__: build, do not launch
        "demo = space['demo']\n"
        "assert isinstance(demo, gr.Blocks)\n"
        "titles = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]\n"
        "assert 'Filter playground' in titles, titles\n"
        "print('tabs:', titles)")
    assert "Filter playground" in done.stdout


def test_playground_on_the_tiny_store_without_torch(tmp_path):
    """The playground's handlers themselves, not only its imports, run without torch."""
    run_without_torch(
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from pathlib import Path\n"
        "from tinystore import build_tiny_store\n"
        "from convzoo.demos import playground, examples\n"
        f"store = build_tiny_store(Path({str(tmp_path)!r}))\n"
        "grid = playground.grid_value(playground.EXERCISE_IMAGE)\n"
        "a, b = (playground.grid_value(playground.preset(n)) for n in playground.DEFAULT_PRESETS[:2])\n"
        "html, *_ = playground.matrix_state(grid, 2, a, b, a, b, '0', '0', '0', '0', 1, 0, 1, False, 'max', 2, 2,"
        " None)\n"
        "assert '7/2' in html\n"
        "figure, message = playground.image_view(examples.load('camera (grey)', 64), 'grey', 64, 2, a, b, a, b,"
        " '0', '0', '0', '0', 1, 0, 1, False, 'max', 2, 2)\n"
        "assert figure is not None, message\n"
        "filters, layer1, _, info = playground.inside_view(store, 'tiny-fashion', examples.load('camera (grey)', 64))\n"
        "assert layer1 is not None, info\n")


def test_evaluation_quantization_and_triton_need_no_torch():
    """`convzoo eval`, `convzoo quantize` and the Triton writer work on an onnxruntime-only install."""
    run_without_torch("import convzoo.evaluation, convzoo.export.quantize, convzoo.export.triton, convzoo.export\n"
                      "assert sys.modules['torch'] is None")
