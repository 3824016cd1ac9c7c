"""`convzoo doctor`: the runtime in use and, when it is not CUDA, the reason and the cure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnxruntime as ort
import pytest

from convzoo.doctor import cuda_verdict

NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
CPU_ONLY = {"onnxruntime": "1.22.0", "onnxruntime-gpu": None}
GPU_ONLY = {"onnxruntime": None, "onnxruntime-gpu": "1.22.0"}
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]
A_GPU = ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"]


@pytest.mark.unit
@pytest.mark.parametrize("packages, providers, gpus, session, used, why, todo", [
    ({"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"}, CUDA, A_GPU, CUDA, False, "both", "pip uninstall"),
    ({"onnxruntime": None, "onnxruntime-gpu": None}, [], A_GPU, None, False, "no onnxruntime", "convzoo[cpu]"),
    (CPU_ONLY, ["CPUExecutionProvider"], [], ["CPUExecutionProvider"], False, "no NVIDIA GPU", "--gpus all"),
    (CPU_ONLY, ["CPUExecutionProvider"], A_GPU, ["CPUExecutionProvider"], False, "CPU build", "convzoo[gpu]"),
    (GPU_ONLY, CUDA, A_GPU, ["CPUExecutionProvider"], False, "fell back", "onnxruntime-gpu[cuda,cudnn]"),
    (GPU_ONLY, CUDA, A_GPU, CUDA, True, "CUDA is used", ""),
])
def test_the_verdict_names_the_first_reason_and_its_cure(packages, providers, gpus, session, used, why, todo):
    verdict = cuda_verdict(packages, providers, gpus, session)
    assert verdict.used is used
    assert why in verdict.why
    assert todo in verdict.todo


def test_doctor_reports_this_machine_without_torch(tmp_path):
    home = tmp_path / "home"
    (home / "half-model").mkdir(parents=True)
    (home / "half-model" / "model.onnx").write_bytes(b"not a model")
    env = dict(os.environ, CONVZOO_HOME=str(home))
    run = [sys.executable, "-c", NO_TORCH + "from convzoo.cli import main; sys.exit(main())", "doctor"]
    report = json.loads(subprocess.run(run + ["--json"], env=env, capture_output=True, text=True, check=True).stdout)
    assert report["providers"] == ort.get_available_providers()
    assert report["probe_providers"] and report["probe_providers"][-1] == "CPUExecutionProvider"
    assert report["cuda"]["used"] is ("CUDAExecutionProvider" in report["probe_providers"])
    assert report["cuda"]["used"] or report["cuda"]["why"]
    roots = [s["root"] for s in report["stores"]]
    assert roots[0] == str(home) and roots[-1].endswith("models")
    assert report["stores"][0]["broken"] and "half-model" in report["stores"][0]["broken"][0]
    assert "lenet5-fashion" in report["stores"][-1]["models"]
    text = subprocess.run(run, env=env, capture_output=True, text=True)
    assert text.returncode == 0 and "Traceback" not in text.stderr
    assert "CUDA:" in text.stdout and "stores searched" in text.stdout and "broken" in text.stdout
