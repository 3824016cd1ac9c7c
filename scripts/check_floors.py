"""Do the declared lower bounds work? Install convzoo with every direct requirement at its floor, in fresh venvs,
and run the torch-free commands. Not part of `make test`: it downloads from PyPI and takes 10-20 minutes.

    python scripts/check_floors.py                       # every scenario, the floors from pyproject.toml
    python scripts/check_floors.py --only demo --pin gradio==6.10.0   # try a candidate floor
    python scripts/check_floors.py --python python3.10   # the oldest Python the package declares

Each scenario is one fresh venv (no system site-packages) with the built wheel and some extras, every direct
requirement of those extras pinned to its floor with ``pip -c`` (what they pull in resolves as pip likes);
torch is never installed. A line per command says ok, or the last line of what went wrong; the exit status is
the number of scenarios that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PNG = ROOT / "convzoo" / "assets" / "fashion_examples"


@dataclass
class Scenario:
    name: str
    extras: list[str]
    checks: list[str] = field(default_factory=list)  # names of functions below


SCENARIOS = [
    Scenario("base", [], ["cli_list", "cli_info", "cli_doctor", "extra_sentences"]),
    Scenario("cpu", ["cpu"], ["api_predict", "cli_eval_measure"]),
    Scenario("serve", ["cpu", "serve"], ["cli_serve", "cli_eval_measure"]),
    Scenario("demo", ["cpu", "demo"], ["cli_demo"]),
    Scenario("eval", ["cpu", "eval"], ["cli_eval_record", "cli_triton", "cli_card"]),
    Scenario("hub", ["hub"], ["hub_import", "cli_pull_offline"]),
]


def floors(extras: list[str], pins: dict[str, str]) -> dict[str, str]:
    """name -> version: the floor of every direct requirement of the base and ``extras`` (``--pin`` wins)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    found = {}
    for requirement in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement)
        name, spec = match[1].lower().replace("_", "-"), match[2]
        low = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if low:
            found[name] = low[1]
    return found | pins


def run(command: list[str], env: dict[str, str], timeout: float = 600, cwd: Path | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tail(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit {result.returncode}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, seconds: float) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} in {seconds:.0f} s")


class Venv:
    def __init__(self, folder: Path, work: Path) -> None:
        self.folder, self.work = folder, work
        self.python = folder / "bin" / "python"
        self.convzoo = folder / "bin" / "convzoo"
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {"PATH": f"{folder / 'bin'}:/usr/bin:/bin", "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                    "LANG": "C.UTF-8", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run([str(self.convzoo), *args], self.env, timeout, cwd=self.work)

    def py(self, code: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run([str(self.python), "-c", code], self.env, timeout, cwd=self.work)

    def server(self, args: list[str], url: str, seconds: float = 180) -> bytes:
        log = self.work / f"{args[0]}.log"
        with open(log, "w") as out:
            process = subprocess.Popen([str(self.convzoo), *args], env=self.env, cwd=self.work, stdout=out,
                                       stderr=subprocess.STDOUT)
        try:
            return wait_http(url, process, seconds)
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {log.read_text().strip().splitlines()[-1:] or ''}") from None
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def ok_if(result: subprocess.CompletedProcess, expect: str | None = None) -> str:
    if result.returncode != 0:
        return f"FAIL: {tail(result)}"
    if expect and expect not in result.stdout + result.stderr:
        return f"FAIL: no {expect!r} in the output: {tail(result)}"
    return "ok"


# ---- the checks: each returns "ok" or "FAIL: why"

def cli_list(v: Venv) -> str:
    return ok_if(v.cli("list"), "lenet5-fashion")


def cli_info(v: Venv) -> str:
    return ok_if(v.cli("info", "lenet5-fashion"), "lenet5-fashion")


def cli_doctor(v: Venv) -> str:
    return ok_if(v.cli("doctor"), "stores searched")


def extra_sentences(v: Venv) -> str:
    """The base install: serve, demo and load each end in one sentence naming their extra, with a non-zero exit."""
    problems = []
    for what, result, extra in (
            ("serve", v.cli("serve"), "serve"), ("demo", v.cli("demo"), "demo"),
            ("load", v.py("import convzoo; convzoo.load('lenet5-fashion')"), "cpu")):
        last = tail(result)
        if result.returncode == 0 or f"convzoo[{extra}" not in last and f",{extra}]" not in last:
            problems.append(f"{what}: exit {result.returncode}, {last}")
    return "ok" if not problems else "FAIL: " + "; ".join(problems)


def api_predict(v: Venv) -> str:
    image = sorted(PNG.glob("*ankle-boot*.png"))[0]
    return ok_if(v.py(f"import convzoo; print(convzoo.load('lenet5-fashion').predict({str(image)!r}).label)"),
                 "Ankle boot")


def cli_eval_measure(v: Venv) -> str:
    return ok_if(v.cli("eval", "lenet5-fashion", "--limit", "500"), '"accuracy"')


def cli_eval_record(v: Venv) -> str:
    site = run([str(v.python), "-c", "import convzoo, os; print(os.path.dirname(convzoo.__file__))"], v.env).stdout
    before = snapshot(Path(site.strip()))
    result = v.cli("eval", "lenet5-fashion", timeout=600)
    if result.returncode != 0:
        return f"FAIL: {tail(result)}"
    recorded = Path(v.env["XDG_CACHE_HOME"]) / "convzoo" / "lenet5-fashion" / "model.json"
    if not recorded.is_file():
        return f"FAIL: nothing recorded in the user store ({recorded})"
    if snapshot(Path(site.strip())) != before:
        return "FAIL: site-packages/convzoo changed"
    return "ok"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def cli_triton(v: Venv) -> str:
    return ok_if(v.cli("triton", str(v.work / "triton"), "lenet5-fashion"), "lenet5-fashion")


def cli_card(v: Venv) -> str:
    store = v.work / "card-store"
    site = v.py("from convzoo.registry import shipped_store; print(shipped_store())").stdout.strip()
    shutil.copytree(Path(site) / "lenet5-fashion", store / "lenet5-fashion")
    return ok_if(v.cli("card", "lenet5-fashion", "--store", str(store)), "lenet5-fashion")


def hub_import(v: Venv) -> str:
    return ok_if(v.py("import convzoo.hub, convzoo.card; print('imported')"), "imported")


def cli_pull_offline(v: Venv) -> str:
    """Offline, a pull must end in convzoo's own sentence (exit 2), which needs huggingface_hub's error classes."""
    v.env["HF_HUB_OFFLINE"] = "1"
    result = v.cli("pull", "someone/lenet5-fashion")
    del v.env["HF_HUB_OFFLINE"]
    return "ok" if result.returncode == 2 and "convzoo: error:" in result.stderr else f"FAIL: {tail(result)}"


def cli_serve(v: Venv) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = v.work / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(v.convzoo), "serve", "--port", str(port), "--models", "lenet5-fashion"],
                                   env=v.env, cwd=v.work, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"{url}/v2/health/ready", process, 120)
        image = sorted(PNG.glob("*ankle-boot*.png"))[0].read_bytes()
        request = urllib.request.Request(f"{url}/v1/models/lenet5-fashion/predict?k=1", data=image,
                                         headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if answer["predictions"][0]["label"] != "Ankle boot":
            return f"FAIL: predicted {answer['predictions'][0]}"
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        return f"FAIL: {e}; {log.read_text().strip().splitlines()[-1:]}"
    finally:
        process.terminate()
        process.wait(timeout=30)
    return "ok"


def cli_demo(v: Venv) -> str:
    port = free_port()
    try:
        config = v.server(["demo", "--port", str(port)], f"http://127.0.0.1:{port}/config", 240)
    except RuntimeError as e:
        return f"FAIL: {e}"
    return "ok" if b'"Classify"' in config else "FAIL: no Classify tab in /config"


# ----

def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True,
                   timeout=600)
    return next(out.glob("convzoo-*.whl"))


def check(scenario: Scenario, wheel: Path, python: str, pins: dict[str, str], work: Path) -> tuple[bool, list[str]]:
    folder = work / scenario.name
    venv = Venv(folder / "venv", folder)
    subprocess.run([python, "-m", "venv", str(venv.folder)], check=True)
    pinned = floors(scenario.extras, pins)
    constraints = folder / "floors.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pinned.items())))
    target = f"{wheel}[{','.join(scenario.extras)}]" if scenario.extras else str(wheel)
    install = run([str(venv.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", target,
                   "-c", str(constraints)], venv.env, timeout=1800)
    lines = [f"[{scenario.name}] extras {scenario.extras or '-'}; floors: "
             + ", ".join(f"{n}=={v}" for n, v in sorted(pinned.items()))]
    if install.returncode != 0:
        text = install.stderr
        cause = text.split("The conflict is caused by:", 1)[1].split("To fix this", 1)[0] if "caused by:" in text else ""
        errors = [line.strip() for line in cause.splitlines() if line.strip()] or \
            [line for line in text.splitlines() if line.startswith("ERROR")]
        lines.append(f"  install: FAIL: {' | '.join(errors[-6:]) or tail(install)}")
        return False, lines
    torch = run([str(venv.python), "-c", "import torch"], venv.env)
    lines.append(f"  install: ok ({'torch present!' if torch.returncode == 0 else 'no torch'})")
    passed = torch.returncode != 0
    for name in scenario.checks:
        try:
            outcome = globals()[name](venv)
        except subprocess.TimeoutExpired as e:
            outcome = f"FAIL: timed out after {e.timeout:.0f} s"
        lines.append(f"  {name}: {outcome}")
        passed = passed and outcome == "ok"
    return passed, lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS], help="run this scenario (repeat)")
    p.add_argument("--pin", action="append", default=[], help="NAME==VERSION in place of the declared floor")
    p.add_argument("--python", default=sys.executable, help="interpreter for the venvs (default: this one)")
    p.add_argument("--keep", help="work in this folder and keep it (default: a temporary one, removed)")
    args = p.parse_args()
    pins = dict(pin.lower().replace("_", "-").split("==", 1) for pin in args.pin)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="convzoo-floors-"))
    work.mkdir(parents=True, exist_ok=True)
    python_version = subprocess.run([args.python, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"convzoo floors, {python_version}, work folder {work}", flush=True)
    failed = 0
    try:
        wheel = build_wheel(work / "dist")
        for scenario in SCENARIOS:
            if args.only and scenario.name not in args.only:
                continue
            start = time.monotonic()
            passed, lines = check(scenario, wheel, args.python, pins, work)
            lines[0] += f" ({time.monotonic() - start:.0f} s)"
            print("\n".join(lines), flush=True)
            failed += not passed
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'all scenarios passed' if not failed else f'{failed} scenario(s) failed'}", flush=True)
    return failed


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    sys.exit(main())
