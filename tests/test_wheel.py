"""`pip install convzoo` alone carries the shipped models: the wheel holds them as convzoo/_shipped, reads them
there, and never writes there (issue 24): what eval records lands in the user store."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, set[str]]:
    """The wheel, built from this checkout and unpacked as site-packages would hold it; and its file names."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, timeout=300)
    wheel = next((tmp / "dist").glob("convzoo-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp / "site")
    return tmp / "site", names


def run_from(site: Path, code: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=home.parent, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(home), **env})


def test_wheel_carries_the_shipped_store_and_finds_it(site, tmp_path):
    folder, names = site
    assert "convzoo/_shipped/lenet5-fashion/model.onnx" in names
    assert "convzoo/imagenet_classes.txt" in names and "convzoo/assets/styles/SOURCES.md" in names
    code = ("import sys; sys.modules['torch'] = None\n"
            "from convzoo.registry import Store, shipped_store\n"
            "assert shipped_store().name == '_shipped', shipped_store()\n"
            "from convzoo.runtime import load_model\n"
            "store = Store([shipped_store()]); load_model('lenet5-fashion', store)\n"
            "print(len(store.names()))")
    out = run_from(folder, code, tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(list((ROOT / "models").glob("*/model.json")))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_eval_of_an_installed_model_records_it_in_the_user_store_and_leaves_the_package_alone(site, tmp_path,
                                                                                              fashion_dir):
    folder, _ = site
    installed = folder / "convzoo" / "_shipped" / "lenet5-fashion" / "model.json"
    manifest = json.loads(installed.read_text())  # numbers an older convzoo recorded (eval leaves equal ones alone)
    manifest["metrics"] = {k: v for k, v in manifest["metrics"].items() if k != "per_class_accuracy"}
    installed.write_text(json.dumps(manifest))
    before = snapshot(folder / "convzoo")
    home = tmp_path / "home"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from convzoo.cli import main; sys.exit(main(['eval', 'lenet5-fashion', '--data-dir', sys.argv[1]]))")
    out = subprocess.run([sys.executable, "-c", code, str(fashion_dir)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["n"] == 10000
    copy = home / ".cache" / "convzoo" / "lenet5-fashion"
    assert f"recorded in {copy}" in out.stderr
    assert json.loads((copy / "model.json").read_text())["metrics"]["n"] == 10000
    assert (copy / "confusion.png").is_file()
    assert snapshot(folder / "convzoo") == before, "eval wrote into the installed package"
