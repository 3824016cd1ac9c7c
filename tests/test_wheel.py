"""`pip install convzoo` alone carries the shipped models: the wheel holds them as convzoo/_shipped."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_shipped_store_and_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("convzoo-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    assert "convzoo/_shipped/lenet5-fashion/model.onnx" in names
    assert "convzoo/imagenet_classes.txt" in names and "convzoo/assets/styles/SOURCES.md" in names
    code = ("import sys; sys.modules['torch'] = None\n"
            "from convzoo.registry import Store, shipped_store\n"
            "assert shipped_store().name == '_shipped', shipped_store()\n"
            "from convzoo.runtime import load_model\n"
            "store = Store([shipped_store()]); load_model('lenet5-fashion', store)\n"
            "print(len(store.names()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(list((ROOT / "models").glob("*/model.json")))
