"""The Hugging Face Space: its file set, in a fresh venv with only requirements.txt, launches without torch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SPACE_FILES = ("app.py", "requirements.txt", "README.md", "convzoo", "models")  # what the Space repository holds


def build_space(target: Path) -> Path:
    missing = [name for name in SPACE_FILES if not (ROOT / name).exists()]
    if missing:
        pytest.fail(f"the Space's file set lacks {', '.join(missing)} at the repository root "
                    "(app.py and requirements.txt come with the filter-playground issue)")
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in SPACE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def wait_for(url: str, process: subprocess.Popen, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(1)
    raise AssertionError(f"app.py did not answer {url} within {seconds:.0f} s")


def test_space_launches_in_a_fresh_venv_without_torch(tmp_path):
    space = build_space(tmp_path / "space")
    requirements = (space / "requirements.txt").read_text()
    assert not re.search(r"(?im)^\s*torch(vision)?\b", requirements), "the Space must not install torch"
    header = (space / "README.md").read_text().split("---")
    assert len(header) >= 3 and re.search(r"(?m)^sdk:\s*gradio", header[1]) and \
        re.search(r"(?m)^app_file:\s*app\.py", header[1]), "README.md needs the Space's YAML header"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no --system-site-packages: nothing leaks in
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "-r", "requirements.txt"], cwd=space, capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, f"pip install -r requirements.txt failed:\n{install.stderr[-3000:]}"
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0, "torch is importable in the Space's venv"

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVZOO_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))  # the shipped models only
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(python), "app.py"], cwd=space, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        page = wait_for(f"http://127.0.0.1:{port}/", process, 180)
        config = wait_for(f"http://127.0.0.1:{port}/config", process, 30)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- app.py output ---\n{log.read_text()[-4000:]}") from None
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "<html" in page.lower()
    for tab in ("Classify", "Style", "Segment", "Invariance lab", "Models"):
        assert f'"{tab}"' in config, f"the Space's app has no {tab} tab"
    assert "Traceback" not in log.read_text()
