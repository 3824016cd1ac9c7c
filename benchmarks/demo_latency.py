"""End-to-end latency of the demo, measured the way a user meets it: through the app's own API (gradio_client).

Classification: p50/p95 of /classify on a Fashion-MNIST test image (upload, preprocessing, inference,
the preview PNG, the answer). Style: /stylize of a 512x512 photo. Issue 6's targets on a 2-core CPU:
classification p95 under 200 ms, a 512-px style transfer under 2 s.

    python benchmarks/demo_latency.py                    # launch the app on the default store
    python benchmarks/demo_latency.py --store models     # a given store folder
    python benchmarks/demo_latency.py --tiny             # tests/tinystore.py's untrained models (overhead only)
    python benchmarks/demo_latency.py --url http://127.0.0.1:7860/   # an app already running
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from convzoo.benchmark import timings_ms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(name: str, ms: list[float]) -> None:
    print(f"{name:<44} n={len(ms):<4} p50 {statistics.median(ms):8.1f} ms   p95 {percentile(ms, 95):8.1f} ms   "
          f"max {max(ms):8.1f} ms")


def launch(store) -> tuple[str, object]:
    from convzoo.demos.app import build_app

    app = build_app(store).queue()
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    return app.local_url, app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--store", type=Path)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--classifier")
    parser.add_argument("--style")
    parser.add_argument("-n", type=int, default=100)
    args = parser.parse_args()

    from convzoo.registry import Store

    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from tinystore import build_tiny_store

        store = build_tiny_store(Path(tempfile.mkdtemp(prefix="convzoo-bench-")))
    else:
        store = Store(args.store) if args.store else Store()
    classifiers = store.names("classification")
    styles = store.names("style")
    fallback = classifiers[0] if classifiers else None
    classifier = args.classifier or next((n for n in classifiers if "fashion" in n), fallback)
    style = args.style or (styles[0] if styles else None)
    print(f"store {store.roots}{' (tiny untrained test models: app overhead, not real networks)' if args.tiny else ''}")
    print(f"machine {platform.machine()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}")

    app = None
    url = args.url
    if not url:
        url, app = launch(store)
    client = Client(url, verbose=False)
    try:
        example = sorted((ROOT / "convzoo" / "assets" / "fashion_examples").glob("*.png"))[0]
        if classifier:
            ms = timings_ms(lambda: client.predict(classifier, handle_file(str(example)), True, api_name="/classify"),
                            args.n, warmup=3)
            report(f"classify {classifier} (end to end)", ms)
        else:
            print("no classifier in the store: classification not measured")
        floor = next(iter(store.names()), None)
        if floor:  # no upload, no image, no model run: what the queue and HTTP cost on their own
            ms = timings_ms(lambda: client.predict(floor, api_name="/model_card"), args.n, warmup=3)
            report("queue floor: /model_card (no image)", ms)
        if style:
            import skimage.data

            photo = Path(tempfile.mkdtemp()) / "astronaut-512.png"
            Image.fromarray(skimage.data.astronaut()).save(photo)  # 512x512
            ms = timings_ms(lambda: client.predict(style, handle_file(str(photo)), 1.0, 512, api_name="/stylize"),
                            max(5, args.n // 10), warmup=1)
            report(f"stylize {style} 512x512 (end to end)", ms)
        else:
            print("no style model in the store: style transfer not measured")
    finally:
        if app is not None:
            app.close()


if __name__ == "__main__":
    main()
