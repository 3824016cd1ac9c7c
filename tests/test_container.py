"""The serving image, built and run for real with buildah (`make test-container`; skipped where no builder is).

Docker Hub cannot be reached from this project's machines, so the base image is Debian bookworm made by
debootstrap from the Debian mirror (python3 and python3-venv: what the Dockerfile needs of python:3.12-slim)
and passed as the BASE build argument. The build runs the Dockerfile as written (pip installs from PyPI);
the image then runs `convzoo serve` as user 10001 under buildah's chroot isolation (no cgroups needed) and
answers a v2 infer request from this side.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/convzoo-test-base:bookworm"
IMAGE = "localhost/convzoo:test"
pytestmark = [pytest.mark.slow, pytest.mark.container,
              pytest.mark.skipif(not shutil.which("buildah"), reason="no container builder here (buildah); "
                                 "`make test-container` installs buildah and debootstrap and runs this")]


def run(*args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args[:4])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> str:
    if run("buildah", "images", "-q", BASE, check=False).stdout.strip():
        return BASE
    if not (shutil.which("debootstrap") and shutil.which("podman")):
        pytest.skip("no base image, and no debootstrap and podman to make one")
    rootfs = tmp_path_factory.mktemp("rootfs")
    run("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm", str(rootfs),
        "http://deb.debian.org/debian")
    tar = rootfs.parent / "rootfs.tar"
    run("tar", "-C", str(rootfs), "-cf", str(tar), ".")
    run("podman", "import", str(tar), BASE)
    return BASE


@pytest.fixture(scope="module")
def image(base_image) -> dict:
    # the machine's CA bundle and resolver, for pip inside the build (this network passes PyPI through a proxy)
    run("buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers=false", "--build-arg",
        f"BASE={base_image}", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", "/etc/resolv.conf:/etc/resolv.conf:ro",
        "-f", str(ROOT / "Dockerfile"), "-t", IMAGE, str(ROOT), timeout=1500)
    return json.loads(run("buildah", "inspect", "--type", "image", IMAGE).stdout)


@pytest.fixture
def container(image):
    name = f"convzoo-test-{time.monotonic_ns()}"
    run("buildah", "from", "--name", name, IMAGE)
    yield name
    run("buildah", "rm", name, check=False)


def test_the_image_is_configured_as_the_dockerfile_says(image):
    config = image["Docker"]["config"]
    assert config["User"] == "10001"
    assert config["Entrypoint"] == ["convzoo"] and config["Cmd"][:1] == ["serve"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
    assert "CONVZOO_HOME=/mnt/models" in config["Env"]


def test_the_image_has_no_torch_and_finds_its_shipped_models(container):
    assert run("buildah", "run", "--isolation", "chroot", container, "--", "python", "-c", "import torch",
               check=False).returncode != 0
    listed = run("buildah", "run", "--isolation", "chroot", "--user", "10001", container, "--", "convzoo", "list").stdout
    assert "lenet5-fashion" in listed and "broken" not in listed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_image_serves_a_v2_request_as_user_10001(container):
    port = free_port()
    server = subprocess.Popen(["buildah", "run", "--isolation", "chroot", "--user", "10001", container, "--",
                               "convzoo", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the image's server was not ready after 120 s"
            time.sleep(0.5)
        body = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                       "data": [0.0] * 784}]}).encode()
        request = urllib.request.Request(f"{url}/v2/models/lenet5-fashion/infer", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            answer = json.load(r)
        assert answer["model_name"] == "lenet5-fashion" and answer["outputs"][0]["shape"] == [1, 10]
        ps = run("ps", "-o", "user=", "-C", "convzoo", check=False).stdout.split()
        assert "10001" in ps or any(u != "root" for u in ps)  # the server process is not root
    finally:
        server.terminate()
        server.wait(timeout=30)
