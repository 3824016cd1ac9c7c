"""The Hugging Face Space (issue 24): `convzoo space DIR` assembles exactly its files, every binary among them goes to
Git LFS, its requirements.txt is the package's own (base, cpu, demo) and nothing else, and the assembled folder
launches from it without torch, importing convzoo from the folder."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from packaging.requirements import Requirement

from convzoo import space
from convzoo.cli import main
from convzoo.errors import ConvzooError

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("space") / "space"
    assert main(["space", str(folder)]) == 0  # the documented command
    return folder


def requirements(lines: list[str]) -> dict[str, Requirement]:
    found = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {r.name.lower().replace("_", "-"): r for r in found}


def test_the_space_holds_exactly_its_files(assembled):
    assert {p.name for p in assembled.iterdir()} == {"app.py", "requirements.txt", "README.md", ".gitattributes",
                                                     "convzoo", "models"}
    files = [p.relative_to(assembled) for p in assembled.rglob("*") if p.is_file()]
    assert not [f for f in files if "__pycache__" in f.parts or f.suffix == ".pyc" or "test_data_set_0" in f.parts]
    for left_out in space.LEFT_OUT:
        assert not (assembled / "convzoo" / left_out).exists(), left_out
    shipped = sorted(p.parent.name for p in (ROOT / "models").glob("*/model.json"))
    assert sorted(p.parent.name for p in (assembled / "models").glob("*/model.json")) == shipped
    assert (assembled / "app.py").read_bytes() == (ROOT / "app.py").read_bytes()


def imported_modules(folder: Path) -> set[str]:
    """Every convzoo module that app.py reaches by an import statement, those inside functions included; every tab
    module (demos/app.py imports the tabs by name)."""
    def file_of(module: str) -> Path | None:
        path = folder.joinpath(*module.split("."))
        return next((p for p in (path / "__init__.py", path.with_suffix(".py")) if p.is_file()), None)

    todo = [folder / "app.py", *sorted((ROOT / "convzoo" / "demos").glob("*.py"))]
    todo[1:] = [folder / p.relative_to(ROOT) for p in todo[1:]]
    seen: set[Path] = set()
    modules: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module, *(f"{node.module}.{a.name}" for a in node.names)] \
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in (n for n in names if n.split(".")[0] == "convzoo"):
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    module = ".".join(parts[:i])
                    source = file_of(module)
                    if source is not None:
                        modules.add(module)
                        todo.append(source)
                    elif (ROOT.joinpath(*parts[:i]).with_suffix(".py").is_file()
                          or (ROOT.joinpath(*parts[:i]) / "__init__.py").is_file()):
                        modules.add(f"MISSING {module}")
    return modules


def test_nothing_the_app_imports_is_left_out(assembled):
    modules = imported_modules(assembled)
    assert "convzoo.demos.app" in modules and "convzoo.registry" in modules
    assert not [m for m in modules if m.startswith("MISSING")]


def test_every_binary_in_the_space_goes_to_lfs(assembled, tmp_path):
    subprocess.run(["git", "init", "-q", str(assembled)], check=True)
    files = [p.relative_to(assembled) for p in assembled.rglob("*") if p.is_file() and ".git" not in p.parts[:1]]
    binary = []
    for f in files:
        data = (assembled / f).read_bytes()
        try:
            data.decode("utf-8")
            is_binary = b"\0" in data
        except UnicodeDecodeError:
            is_binary = True
        if is_binary:
            binary.append(str(f))
    assert len(binary) >= 50 and any(f.endswith(".onnx") for f in binary)
    out = subprocess.run(["git", "check-attr", "--stdin", "filter", "diff", "merge", "text"], cwd=assembled,
                         input="\n".join(binary), capture_output=True, text=True, check=True).stdout
    attributes: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        path, name, value = line.rsplit(": ", 2)
        attributes.setdefault(path, {})[name] = value
    wrong = {path: a for path, a in attributes.items()
             if a != {"filter": "lfs", "diff": "lfs", "merge": "lfs", "text": "unset"}}
    assert not wrong and set(attributes) == set(binary)
    large_text = [str(f) for f in files if str(f) not in binary and (assembled / f).stat().st_size > 10 * 2**20]
    assert not large_text  # the Hub takes text files up to 10 MB without LFS


def test_the_spaces_readme_configures_it_and_the_packages_does_not(assembled):
    readme = (assembled / "README.md").read_text()
    header = readme.split("---\n")[1]
    config = dict(line.split(": ", 1) for line in header.strip().splitlines())
    assert config["sdk"] == "gradio" and config["app_file"] == "app.py"
    gradio = requirements((assembled / "requirements.txt").read_text().splitlines())["gradio"]
    assert config["sdk_version"] in gradio.specifier  # the Gradio the Space runs is one the requirements allow
    assert readme.endswith((ROOT / "README.md").read_text())
    assert not (ROOT / "README.md").read_text().startswith("---")  # PyPI's long description: no Space header


def test_the_spaces_requirements_are_the_package_base_cpu_and_demo():
    space_requirements = requirements((ROOT / "requirements.txt").read_text().splitlines())
    declared = requirements(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["cpu"]
                            + PROJECT["optional-dependencies"]["demo"])
    assert {n: str(r.specifier) for n, r in space_requirements.items()} == \
        {n: str(r.specifier) for n, r in declared.items()}
    assert not {"torch", "torchvision"} & set(space_requirements)


def test_space_refuses_a_folder_with_files_unless_told_to_replace(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "old.txt").write_text("from an earlier Space")
    with pytest.raises(ConvzooError, match="already holds old.txt.*--replace"):
        space.assemble(tmp_path)
    space.assemble(tmp_path, replace=True)
    assert (tmp_path / ".git").is_dir() and not (tmp_path / "old.txt").exists() and (tmp_path / "app.py").is_file()


def distributions_needed(names: list[str]) -> set[str]:
    """The distributions ``names`` install: themselves and what they require, transitively (as installed here)."""
    todo, found = [n.lower().replace("_", "-") for n in names], set()
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            required = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in required:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return found


def run_app(assembled: Path, code: str, env: dict[str, str], **popen) -> subprocess.Popen:
    """Python in the Space folder, with torch unimportable and nothing from this checkout on the path."""
    prelude = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
               f"sys.path = [p for p in sys.path if not p.startswith({str(ROOT)!r}) or '.venv' in p]\n"
               "sys.path.insert(0, '.')\n")
    return subprocess.Popen([sys.executable, "-c", prelude + code], cwd=assembled, env=env, **popen)


def third_party_imports(folder: Path) -> set[str]:
    """The top-level modules outside the standard library and convzoo that the Space's Python files import."""
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"convzoo", "__future__"}


def test_the_spaces_requirements_bring_every_module_it_imports(assembled):
    wanted = requirements((assembled / "requirements.txt").read_text().splitlines())
    brought = distributions_needed(list(wanted))
    owners = md.packages_distributions()
    imports = third_party_imports(assembled)
    assert {"gradio", "onnxruntime", "numpy", "PIL"} <= imports
    missing = {m for m in imports if not {d.lower().replace("_", "-") for d in owners.get(m, [m])} & brought}
    assert not missing, f"the Space imports {sorted(missing)}, which its requirements.txt does not bring"


@pytest.mark.slow
def test_the_assembled_space_launches_from_its_own_requirements_without_torch(assembled, tmp_path):
    """This machine's venv stands in for `pip install -r requirements.txt` (a fresh install is the release check,
    README: Deploying the Space): every requirement is satisfied here, and app.py runs from the folder, its
    convzoo the folder's own, with torch unimportable."""
    wanted = requirements((assembled / "requirements.txt").read_text().splitlines())
    for name, requirement in wanted.items():
        assert md.version(name) in requirement.specifier, f"this venv's {name} {md.version(name)} is not {requirement}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVZOO_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    port = free_port()
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    log = tmp_path / "app.log"
    with open(log, "w") as output:
        process = run_app(assembled, "import runpy, convzoo\n"
                                     "print('convzoo from', convzoo.__file__, flush=True)\n"
                                     "runpy.run_path('app.py', run_name='__main__')", env,
                          stdout=output, stderr=subprocess.STDOUT)
    try:
        config = wait_for(f"http://127.0.0.1:{port}/config", process, 180)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- app.py output ---\n{log.read_text()[-4000:]}") from None
    finally:
        process.terminate()
        process.wait(timeout=30)
    for tab in ("Classify", "Style", "Segment", "Invariance lab", "Models"):
        assert f'"{tab}"' in config, f"the Space's app has no {tab} tab"
    text = log.read_text()
    assert f"convzoo from {assembled / 'convzoo' / '__init__.py'}" in text  # the Space's own copy
    assert "Traceback" not in text


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


def test_outside_a_checkout_space_says_where_to_run_it(tmp_path, monkeypatch):
    monkeypatch.setattr(space, "__file__", str(tmp_path / "site-packages" / "convzoo" / "space.py"))
    with pytest.raises(ConvzooError, match="from a source checkout.*clone of the convzoo repository"):
        space.checkout()
    assert re.search(r"lacks app\.py", str(pytest.raises(ConvzooError, space.checkout).value))
