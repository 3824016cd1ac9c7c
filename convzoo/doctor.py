"""`convzoo doctor`: which runtime convzoo will use on this machine, and if not CUDA, why and what to do.

Every fact is read without importing torch (its version comes from the installed package's metadata)
and without a GPU library of our own: the onnxruntime build, its providers, whether an NVIDIA GPU is
visible, and the stores with what they hold.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from convzoo import __version__, extras
from convzoo.registry import BrokenModel, Store

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "pillow", "huggingface_hub", "gradio", "fastapi",
            "uvicorn", "torch", "torchvision")


def installed(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def gpus_seen() -> list[str]:
    """The NVIDIA GPUs the driver shows (``nvidia-smi -L``), or the device nodes when nvidia-smi is absent."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            return [line.strip() for line in out.splitlines() if line.startswith("GPU")]
        except (OSError, subprocess.SubprocessError):
            return []
    return sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))


@dataclass
class CudaVerdict:
    used: bool
    why: str
    todo: str = ""


def cuda_verdict(packages: dict[str, str | None], providers: list[str], gpus: list[str],
                 session_providers: list[str] | None) -> CudaVerdict:
    """Whether onnxruntime runs convzoo's models on CUDA here, and if not, the first reason and its cure."""
    cpu, gpu = packages.get("onnxruntime"), packages.get("onnxruntime-gpu")
    if cpu and gpu:
        return CudaVerdict(False, f"both onnxruntime {cpu} and onnxruntime-gpu {gpu} are installed; they install the "
                                  "same module and overwrite each other",
                           "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'convzoo[gpu]'")
    if not cpu and not gpu:
        return CudaVerdict(False, "no onnxruntime is installed", "pip install 'convzoo[cpu]' (or 'convzoo[gpu]')")
    if not gpus:
        return CudaVerdict(False, "no NVIDIA GPU is visible (no nvidia-smi output, no /dev/nvidia* device)",
                           "nothing to do for a CPU machine; in a container, run it with the GPU passed through "
                           "(docker run --gpus all)")
    if "CUDAExecutionProvider" not in providers:
        return CudaVerdict(False, f"the installed onnxruntime {cpu} is the CPU build (providers: {', '.join(providers)})",
                           "pip uninstall -y onnxruntime && pip install 'convzoo[gpu]'")
    if session_providers is not None and "CUDAExecutionProvider" not in session_providers:
        return CudaVerdict(False, "onnxruntime-gpu offers CUDA but a session fell back to the CPU: the CUDA 12 or "
                                  "cuDNN 9 libraries it needs were not found",
                           "pip install 'onnxruntime-gpu[cuda,cudnn]' (the NVIDIA libraries as wheels), or install "
                           "CUDA 12 and cuDNN 9 and put them on LD_LIBRARY_PATH")
    return CudaVerdict(True, f"CUDA is used ({gpus[0]})")


def probe_session(store: Store) -> tuple[str | None, list[str] | None]:
    """Open the smallest stored model as convzoo would and report the providers the session really got."""
    models = sorted(store.models(), key=lambda m: m.size_bytes)
    if not models:
        return None, None
    from convzoo.runtime import OnnxModel  # noqa: PLC0415 -- onnxruntime may be missing; report() says so

    model = OnnxModel(models[0].onnx_path)
    return models[0].name, model.session.get_providers()


@dataclass
class Report:
    python: str
    platform: str
    convzoo: str
    packages: dict[str, str | None]
    onnxruntime_device: str | None
    providers: list[str]
    gpus: list[str]
    probe_model: str | None
    probe_providers: list[str] | None
    cuda: CudaVerdict
    stores: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, list[str]] = field(default_factory=dict)  # extra -> its modules missing here

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def extras_missing() -> dict[str, list[str]]:
    """Each extra with the modules of it that cannot be imported here (none: it is installed). cpu stands for
    gpu too: both bring the module onnxruntime."""
    return {name: [m for m in modules if extras.absent(m)] for name, modules in extras.EXTRAS.items() if name != "gpu"}


def report(store: Store | None = None) -> Report:
    store = store if store is not None else Store()
    packages = {name: installed(name) for name in PACKAGES}
    try:
        import onnxruntime as ort  # noqa: PLC0415 -- its absence is one of the things reported

        device, providers = ort.get_device(), list(ort.get_available_providers())
    except ImportError:
        device, providers = None, []
    gpus = gpus_seen()
    probe_model, probe_providers = probe_session(store) if providers else (None, None)
    stores = []
    for root in store.roots:
        found = Store(root).scan() if root.is_dir() else []
        stores.append({"root": str(root), "exists": root.is_dir(),
                       "models": [m.name for m in found if not isinstance(m, BrokenModel)],
                       "broken": [f"{m.name}: {m.reason}" for m in found if isinstance(m, BrokenModel)]})
    return Report(python=platform.python_version(), platform=platform.platform(), convzoo=__version__,
                  packages=packages, onnxruntime_device=device, providers=providers, gpus=gpus,
                  probe_model=probe_model, probe_providers=probe_providers,
                  cuda=cuda_verdict(packages, providers, gpus, probe_providers), stores=stores,
                  extras=extras_missing())


def render(r: Report) -> list[str]:
    """The report as lines for a terminal (rich markup)."""
    lines = [f"[bold]convzoo {r.convzoo}[/bold] on Python {r.python}, {r.platform}", "", "[bold]packages[/bold]"]
    for name, version in r.packages.items():
        lines.append(f"  {name:<16} {version or '[dim]not installed[/dim]'}")
    torch = r.packages.get("torch")
    lines.append(f"  torch is {'present' if torch else 'absent'}: needed only to train and export; "
                 "serving, the app and the Python API run without it")
    lines += ["", "[bold]extras[/bold] (pip install 'convzoo[NAME]')"]
    for name, missing in r.extras.items():
        label = "cpu, gpu" if name == "cpu" else name
        lines.append(f"  {label:<16} " + ("installed" if not missing else f"[dim]missing {', '.join(missing)}[/dim]"))
    lines += ["", "[bold]onnxruntime[/bold]",
              f"  build: {r.onnxruntime_device or 'not importable'}; providers: {', '.join(r.providers) or '-'}",
              f"  GPUs seen: {'; '.join(r.gpus) or 'none'}"]
    if r.probe_model:
        lines.append(f"  a session on {r.probe_model} got: {', '.join(r.probe_providers or [])}")
    colour = "green" if r.cuda.used else "yellow"
    lines.append(f"  [{colour}]CUDA: {'yes' if r.cuda.used else 'no'}[/{colour}]: {r.cuda.why}")
    if r.cuda.todo:
        lines.append(f"  to change it: {r.cuda.todo}")
    lines += ["", "[bold]stores searched, in order[/bold] ($CONVZOO_HOME, the user store, the shipped models)"]
    for s in r.stores:
        state = f"{len(s['models'])} models" if s["exists"] else "absent"
        lines.append(f"  {s['root']}: {state}" + (f": {', '.join(s['models'])}" if s["models"] else ""))
        lines += [f"    [red]broken[/red] {b}" for b in s["broken"]]
    if os.environ.get("CONVZOO_HOME"):
        lines.append(f"  ($CONVZOO_HOME is {os.environ['CONVZOO_HOME']})")
    return lines
