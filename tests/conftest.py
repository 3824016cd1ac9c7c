"""Shared fixtures: a tiny model store, free ports, a launched Gradio app, a headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/tinystore.py, importable by every test module

from tinystore import build_tiny_store  # noqa: E402

from convzoo import registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"  # screenshots and other things a person may want to look at after a run
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FASHION_DIR = Path(os.environ.get("CONVZOO_DATA", "/usr/share/datasets/fashion-mnist"))


UNIT_OPT_IN = "pytest.mark.unit"  # a module (pytestmark) or a test that belongs to the fast tier says so


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: torch-free, gradio-free, no servers or processes; `make test-fast` "
                                       "(pytest -m unit) runs only these, in under 30 s with collection")
    if _unit_tier(config):  # the tier stays honest: what it must not use cannot be imported or started
        for heavy in ("torch", "torchvision", "gradio"):
            sys.modules[heavy] = None  # type: ignore[assignment]
        subprocess.Popen.__init__ = _no_processes  # type: ignore[method-assign]


def _unit_tier(config: pytest.Config) -> bool:
    return (config.getoption("markexpr", "") or "").strip() == "unit"


def _no_processes(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a unit test started a process; mark it slow instead of unit")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit``, a test module that marks nothing unit is not even imported: collecting the heavy
    modules (torch, gradio) is most of the time a full collection takes."""
    if _unit_tier(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return UNIT_OPT_IN not in collection_path.read_text()
    return None


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> registry.Store:
    return build_tiny_store(tmp_path_factory.mktemp("tiny-store"))


@pytest.fixture(scope="session")
def shipped_store() -> registry.Store:
    return registry.Store(registry.shipped_store())


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists() and not (FASHION_DIR / "t10k-images-idx3-ubyte").exists():
        pytest.fail(f"Fashion-MNIST is not in {FASHION_DIR}: `apt-get install dataset-fashion-mnist` (.ci/run does)")
    return FASHION_DIR


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def launch_gradio(store: registry.Store) -> Iterator[str]:
    """Launch the whole app on 127.0.0.1 and a free port; yield its URL; close it afterwards."""
    from convzoo.demos.app import build_app

    app = build_app(store).queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url.rstrip("/") + "/"
    finally:
        app.close()


@pytest.fixture(scope="session")
def app_url(tiny_store) -> Iterator[str]:
    """The app on the tiny store (fast; no trained models needed)."""
    yield from launch_gradio(tiny_store)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright; never a downloaded browser. Module-scoped:
    Playwright's sync API keeps an event loop running in the main thread while it lives, and later
    tests that call asyncio.run() must not find one."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium chromium-driver` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
