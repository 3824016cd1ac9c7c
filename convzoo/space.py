"""`convzoo space DIR`: the Hugging Face Space, assembled from a source checkout: exactly the files it runs.

A Gradio Space installs ``requirements.txt`` (no torch) and runs ``app.py``, which imports the ``convzoo``
package beside it (not installed) and serves the models in ``models/``. The folder holds:

* ``app.py``, ``requirements.txt``;
* ``README.md``: the Space's YAML header (``HEADER``: sdk, app_file, ...), then this project's README;
* ``.gitattributes``: the checkout's, which sends every binary file (.onnx, .pb, .png, .jpg, ...) to Git LFS,
  as the Hub requires;
* ``convzoo/`` without what the app never imports (``LEFT_OUT``: the torch side, the command line, the
  measuring and publishing tools) and without caches;
* ``models/``: the shipped models, without ``test_data_set_0/`` (reference tensors the app never reads).

Then ``hf upload ORG/NAME DIR . --repo-type space`` (or a git push with git-lfs) publishes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from convzoo.errors import ConvzooError

# The Space's configuration (https://huggingface.co/docs/hub/spaces-config-reference). sdk_version is the Gradio
# the app is tested with; Python 3.11 is what scripts/check_floors.py runs on.
HEADER = """---
title: convzoo
emoji: 🧮
colorFrom: indigo
colorTo: yellow
sdk: gradio
sdk_version: 6.31.0
python_version: "3.11"
app_file: app.py
pinned: false
license: mit
short_description: Classic CNNs on ONNX Runtime, from a convolution by hand to a model zoo
---

"""
TOP_FILES = ("app.py", "requirements.txt", ".gitattributes")
# convzoo/ entries the app never imports (tests/test_space.py follows every import of app.py, those inside
# functions too, and checks that none of them is left out)
LEFT_OUT = ("models", "training", "export", "data", "serving", "cli.py", "space.py", "evaluation.py",
            "benchmark.py", "segmentation_eval.py", "segmentation_metrics.py", "packaging.py", "hub.py", "doctor.py")
LEFT_OUT_OF_MODELS = ("test_data_set_0",)
CACHES = ("__pycache__", "*.pyc", ".*")


def checkout() -> Path:
    """The source checkout this convzoo runs from; a ConvzooError where it is an installed package."""
    root = Path(__file__).resolve().parent.parent
    missing = [name for name in (*TOP_FILES, "README.md", "models") if not (root / name).exists()]
    if missing:
        raise ConvzooError(f"`convzoo space` assembles the Space from a source checkout, and {root} lacks "
                           f"{', '.join(missing)}; run it from a clone of the convzoo repository")
    return root


def readme(root: Path) -> str:
    """The Space's README.md: its YAML header, then the project's README."""
    return HEADER + (root / "README.md").read_text()


def _prepare(target: Path, replace: bool) -> None:
    if target.exists() and not target.is_dir():
        raise ConvzooError(f"{target} is a file; give a folder for the Space")
    kept = {".git"}  # a clone of the Space's repository: its history stays
    present = sorted(p.name for p in target.iterdir() if p.name not in kept) if target.is_dir() else []
    if present and not replace:
        raise ConvzooError(f"{target} already holds {', '.join(present[:5])}{' ...' if len(present) > 5 else ''}; "
                           "give an empty folder, or --replace to remove everything in it but .git")
    for name in present:
        path = target / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    target.mkdir(parents=True, exist_ok=True)


def assemble(target: Path | str, replace: bool = False) -> list[Path]:
    """Write the Space's files into ``target`` (absent, empty, or a clone holding only .git; ``replace`` empties
    it first, .git kept). Returns the files written, relative to ``target``."""
    root, target = checkout(), Path(target)
    _prepare(target, replace)
    for name in TOP_FILES:
        shutil.copy2(root / name, target / name)
    (target / "README.md").write_text(readme(root))
    package_ignore = shutil.ignore_patterns(*CACHES)

    def package_filter(folder: str, names: list[str]) -> set[str]:
        left_out = set(LEFT_OUT) if Path(folder).resolve() == root / "convzoo" else set()
        return left_out | package_ignore(folder, names)

    shutil.copytree(root / "convzoo", target / "convzoo", ignore=package_filter)
    shutil.copytree(root / "models", target / "models", ignore=shutil.ignore_patterns(*CACHES, *LEFT_OUT_OF_MODELS))
    return sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file() and ".git" not in p.parts[:1])
