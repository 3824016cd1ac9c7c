"""The container and the cluster: Dockerfiles and KServe/Triton manifests agree with the service and validate
with the kserve SDK's own models; the image's health check is run against a real `convzoo serve`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from convzoo.serving.app import create_app

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy").rglob("*.yaml"))
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.gpu"]
KSERVE_VENV = ROOT / ".venv-kserve"  # kserve pins protobuf<7 and pandas<3: it gets a venv of its own
pytestmark = pytest.mark.slow


def dockerfile(path: Path) -> dict[str, list[str]]:
    """Instructions of the final stage, by name, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages = re.split(r"(?m)^FROM ", text)
    instructions: dict[str, list[str]] = {}
    for line in stages[-1].splitlines()[1:]:
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    python = KSERVE_VENV / "bin" / "python"
    if not (KSERVE_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(KSERVE_VENV)], check=True)
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                  "kserve>=0.14", "pyyaml"], capture_output=True, text=True, timeout=900)
        assert install.returncode == 0, f"pip install kserve failed:\n{install.stderr[-3000:]}"
        (KSERVE_VENV / ".installed").touch()
    return python


def validate(python: Path, paths: list[Path]) -> list[dict]:
    out = subprocess.run([str(python), str(ROOT / "tests" / "kserve_validate.py"), *map(str, paths)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_manifest_validates_with_the_kserve_sdk(kserve_python):
    results = validate(kserve_python, MANIFESTS)
    assert {(r["kind"], r["name"]) for r in results} == {
        ("ServingRuntime", "convzoo"), ("ServingRuntime", "convzoo-gpu"),
        ("InferenceService", "convzoo"), ("InferenceService", "convzoo-triton")}
    assert [r for r in results if not r["ok"]] == []


def test_the_validator_catches_what_kserve_would_refuse(kserve_python, tmp_path):
    isvc = yaml.safe_load((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text())
    isvc["spec"]["predictor"]["model"]["protocolVersion"] = 2
    isvc["spec"]["predictor"]["minReplica"] = 1
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(isvc))
    [result] = validate(kserve_python, [tmp_path / "broken.yaml"])
    assert not result["ok"]
    assert any("protocolVersion: expected str" in p for p in result["problems"])
    assert any("minReplica: not a field" in p for p in result["problems"])


def runtime_container(name: str) -> dict:
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "ServingRuntime" and doc["metadata"]["name"] == name:
                return doc["spec"]["containers"][0]
    raise AssertionError(f"no ServingRuntime {name}")


@pytest.mark.parametrize("runtime, path", [("convzoo", DOCKERFILES[0]), ("convzoo-gpu", DOCKERFILES[1])])
def test_the_image_and_its_runtime_agree_with_the_service(runtime, path):
    image = dockerfile(path)
    container = runtime_container(runtime)
    routes = set(create_app(store=None, models=[]).openapi()["paths"])
    port = int(image["EXPOSE"][0])
    assert container["ports"][0]["containerPort"] == port
    assert f"--port {port}" in " ".join(container["args"]) and f'"--port", "{port}"' in image["CMD"][0]
    assert image["USER"] == ["10001"] and container["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["runAsNonRoot"] is True
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes and container[probe]["httpGet"]["port"] == port
    health = re.search(r"http://127\.0\.0\.1:(\d+)(/\S+?)'", image["HEALTHCHECK"][0])
    assert int(health[1]) == port and health[2] in routes
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CONVZOO_HOME"] == "/mnt/models" and "CONVZOO_HOME=/mnt/models" in " ".join(image["ENV"])
    assert image["ENTRYPOINT"] == ['["convzoo"]']
    memory = container["resources"]["limits"]["memory"]
    assert memory.endswith("Gi") and int(memory[:-2]) >= 2  # the service's peak RSS bound (test_serving_memory)
    if runtime.endswith("gpu"):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "[gpu,serve]" in path.read_text() and "cudnn" in path.read_text()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_images_health_check_passes_against_a_real_server_as_the_container_runs_it(tmp_path):
    """`convzoo serve` as the image's CMD starts it (CONVZOO_HOME=/mnt/models absent, as without a storageUri),
    on a free port; the HEALTHCHECK command, run as written, fails before the server is ready and passes after."""
    image = dockerfile(DOCKERFILES[0])
    port = free_port()
    command = [c for c in json.loads(image["CMD"][0])]
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    health = json.loads(image["HEALTHCHECK"][0].split("CMD", 1)[1])
    health = [sys.executable if word == "python" else word.replace(":8080/", f":{port}/") for word in health]
    assert subprocess.run(health, capture_output=True, timeout=30).returncode != 0  # nothing listens yet
    env = dict(os.environ, CONVZOO_HOME=str(tmp_path / "mnt" / "models"), HOME=str(tmp_path / "home"))
    server = subprocess.Popen([sys.executable, "-c", "import sys; sys.modules['torch'] = None\n"
                               "from convzoo.cli import main; sys.exit(main())", *command[:]],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(health, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, f"convzoo serve exited: {server.stdout.read()[-2000:]}"
            assert time.monotonic() < deadline, f"not ready after 90 s: {shlex.join(health)}"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # uvicorn finishes its shutdown, then re-raises the SIGTERM it caught, as a process manager expects
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in server.stdout.read()


def test_the_manifests_name_the_image_make_image_builds():
    """deploy/kserve's images are the tags `make image` and `make image-gpu` give (the package version), so the
    manifests never name an image that nothing builds (issue 24). The build itself is test_container.py's."""
    from convzoo import __version__

    built = {}
    for target in ("image", "image-gpu"):
        dry = subprocess.run(["make", "-n", target, "BUILDER=builder"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        [command] = [line for line in dry.splitlines() if line.startswith("builder build")]
        words = shlex.split(command)
        built[words[words.index("-f") + 1]] = words[words.index("-t") + 1]
    assert built == {"Dockerfile": f"ghcr.io/convzoo/convzoo:{__version__}",
                     "Dockerfile.gpu": f"ghcr.io/convzoo/convzoo:{__version__}-gpu"}
    assert runtime_container("convzoo")["image"] == built["Dockerfile"]
    assert runtime_container("convzoo-gpu")["image"] == built["Dockerfile.gpu"]
