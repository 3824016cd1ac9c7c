"""Screenshots of every tab of the app, at a desktop's width and a phone's 390 px, for the README (issue 23).

    python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

The app runs on the shipped models (as ``convzoo demo`` and the Space do) on 127.0.0.1 and a free port; Debian's
Chromium, headless through Playwright, opens each tab, does what a person would do first (an example, a button),
and takes the page. Each PNG is cut to ``MAX_HEIGHT`` CSS pixels and written with an adaptive palette, so the
folder stays small.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
MAX_HEIGHT = 2000  # CSS pixels of page kept per shot
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_tab(page, title: str) -> None:  # noqa: ANN001 -- a Playwright page
    """Click a tab's button. On a phone Gradio folds the tabs that do not fit into a "More tabs" menu; the tab bar
    keeps a hidden copy of each button, so the last button named ``title`` is the one a person can reach."""
    page.locator("button", has_text=title).first.wait_for(state="attached")
    clicked = page.evaluate("""title => {
        const buttons = [...document.querySelectorAll('button')].filter(b => b.textContent.trim() === title);
        if (buttons.length) { buttons[buttons.length - 1].click(); }
        return buttons.length > 0;
    }""", title)
    if not clicked:
        raise RuntimeError(f"no tab named {title!r} on the page")


def _tab(title: str) -> Callable:
    return lambda page: choose_tab(page, title)


def _classify(page) -> None:  # noqa: ANN001
    from convzoo.demos.common import skimage_photos

    _tab("Classify")(page)
    page.locator("#classify-image input[type=file]").set_input_files(skimage_photos(("chelsea",))[0])
    page.locator("#classify-ood").get_by_text("does not look like", exact=False).wait_for(timeout=60_000)


def _style(page) -> None:  # noqa: ANN001
    from convzoo.demos.common import skimage_photos

    _tab("Style")(page)
    page.locator("#style-content input[type=file]").set_input_files(skimage_photos(("coffee",))[0])
    page.locator("#style-gallery img").first.click()
    page.locator("#style-result img").wait_for(timeout=120_000)


def _segment(page) -> None:  # noqa: ANN001
    _tab("Segment")(page)
    section = min((ROOT / "convzoo" / "assets" / "membranes").glob("*.png"))
    page.locator("#segment-image input[type=file]").set_input_files(str(section))
    page.locator("#segment-run").click()
    page.locator("#segment-overlay img").wait_for(timeout=120_000)


def _invariance(page) -> None:  # noqa: ANN001
    _tab("Invariance lab")(page)
    page.locator("#invariance-predict").click()
    page.locator("#invariance-run").click()
    page.locator("#invariance-plot img").wait_for(timeout=120_000)


def _thinking(page) -> None:  # noqa: ANN001
    _tab("Convolution thinking")(page)
    page.locator("#thinking-top-lenet5-fashion h2").wait_for(timeout=60_000)


def _playground_view(view: str, wait: str) -> Callable:
    def open_it(page) -> None:  # noqa: ANN001
        choose_tab(page, view)
        page.locator(wait).first.wait_for(timeout=120_000)
    return open_it


SHOTS: dict[str, Callable] = {  # file stem -> what to do before the shot
    "playground-by-hand": lambda page: page.locator("#pg-outputs td[data-cell]").first.wait_for(),
    "playground-1d": _playground_view("1D signal", "#beyond-signal-view td"),
    "playground-graph": _playground_view("Graph", "#beyond-graph-view svg"),
    "playground-3d": _playground_view("3D sizes", "#beyond-volume-view td"),
    "playground-image": _playground_view("On an image", "#pg-maps img"),
    "playground-inside": _playground_view("Inside a trained CNN", "#pg-layer1 img"),
    "classify": _classify,
    "style": _style,
    "segment": _segment,
    "invariance": _invariance,
    "thinking": _thinking,
    "models": _tab("Models"),
}


def small_png(png: bytes, width: int) -> bytes:
    """The shot at CSS-pixel width, cut to ``MAX_HEIGHT``, in a 256-colour palette (text stays sharp)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width != width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    image = image.crop((0, 0, width, min(image.height, MAX_HEIGHT)))
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG",
                                                                                                optimize=True)
    return out.getvalue()


def take(out: Path, chromium: str, only: list[str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from convzoo.demos import queued
    from convzoo.demos.app import build_app
    from convzoo.registry import Store, shipped_store

    out.mkdir(parents=True, exist_ok=True)
    app = queued(build_app(Store([shipped_store()])))
    app.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    written = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
            for device, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height},
                                              is_mobile=device == "phone", has_touch=device == "phone")
                for stem, act in SHOTS.items():
                    if only and stem not in only:
                        continue
                    page = context.new_page()
                    page.set_default_timeout(60_000)
                    page.goto(app.local_url)
                    act(page)
                    page.wait_for_timeout(1500)  # images decode, progress bars leave
                    path = out / f"{stem}-{device}.png"
                    path.write_bytes(small_png(page.screenshot(full_page=True), width))
                    written.append(path)
                    print(f"{path} ({path.stat().st_size // 1024} KiB)", flush=True)
                    page.close()
                context.close()
            browser.close()
    finally:
        app.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("only", nargs="*", help=f"shots to take (default: all of {', '.join(SHOTS)})")
    args = parser.parse_args(argv)
    take(args.out, args.chromium, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
