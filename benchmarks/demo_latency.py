"""The demo next to Gradio's own floor: per-call latency of a plain HTTP call, of a bare Gradio no-op, and of
convzoo's Classify and Style calls, through each way a client can call a Gradio app, in one run (issue 12).

Every server runs in one child process (uvicorn, as Gradio launches it), the client in this one: on a 2-CPU machine
each gets a core, as a browser and a server would. The calls alternate: each iteration makes one call of every cell,
in a shuffled order, so that the machine's noise hits every cell alike, with a pause after each call (``--gap-ms``,
30 ms, as between a user's clicks) so that work a server does after answering is not charged to the next call.

The client paths (the same path for a floor and for the call it is compared with):

* ``http``: a plain Starlette endpoint that echoes its JSON, httpx with keep-alive: the network floor.
* ``run``: one ``POST /gradio_api/run/<api_name>`` with a session hash, the path the browser takes for an event
  registered with ``queue=False``; ``run + GET preview`` adds the browser's second request, for the picture.
* ``run, no session``: the same POST without a session hash, as curl would send it: Gradio then builds a fresh
  session state, the configuration of every component of the app, on each call.
* ``queue``: ``POST /gradio_api/queue/join`` then ``GET /gradio_api/queue/data`` (server-sent events), with a session
  hash: the path the browser takes for a queued event (the default).
* ``call``: ``POST /gradio_api/call/<api_name>`` then ``GET /gradio_api/call/<api_name>/<event_id>``: Gradio's
  documented HTTP API, without a session hash (``call, session``: with one in the POST body).
* ``gradio_client``: ``Client.predict``, which uploads its files, joins the queue and downloads its output files,
  each through a new httpx client; ``gradio_client, ssl_verify=False`` skips loading the CA bundle for each of them.

Image inputs are uploaded once before the timing on the raw paths (the browser uploads when the user picks the image,
before the call), and on every call through gradio_client (``handle_file``).

    python benchmarks/demo_latency.py                    # shipped store; writes benchmarks/results/demo_latency.json
    python benchmarks/demo_latency.py -n 40 --style-every 4 --gap-ms 0
    python benchmarks/demo_latency.py --quick            # 5 iterations, no JSON
    python benchmarks/demo_latency.py --tiny             # tests/tinystore.py's untrained models (overhead only)
    python benchmarks/demo_latency.py --url http://127.0.0.1:7860/   # a convzoo app already running
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convzoo.demos import GRADIO_ENV, MAX_UPLOAD, use_gradio_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "demo_latency.json"
EXAMPLE = sorted((ROOT / "convzoo" / "assets" / "fashion_examples").glob("*.png"))[0]

# The per-event settings Gradio 6 offers, each on its own copy of the no-op (keyword arguments of the event listener).
EVENT_SETTINGS = {
    "noop": {},
    "noop_direct": {"queue": False},
    "noop_progress_hidden": {"show_progress": "hidden"},
    "noop_unlimited": {"concurrency_limit": None},
    "noop_unprocessed": {"preprocess": False, "postprocess": False},
    "noop_trigger_multiple": {"trigger_mode": "multiple"},
    "noop_undocumented": {"api_visibility": "undocumented"},
}
# gradio_client's one setting that changes its per-call cost: every call makes new httpx clients, and with
# ssl_verify=True (the default) each loads the CA bundle, even for http://
FAST_CLIENT = "gradio_client, ssl_verify=False"
# The app-wide settings, on a second no-op app: Blocks.queue() and Blocks.launch() arguments.
APP_QUEUE_SETTINGS = {"default_concurrency_limit": None, "status_update_rate": 3600}
APP_LAUNCH_SETTINGS = {"max_threads": 4, "enable_monitoring": False, "run_history": False, "ssr_mode": False}
# After each queued call, Gradio's queue recomputes a pandas summary of its last 10,000 calls for /monitoring, every
# GRADIO_ANALYTICS_CACHE_FREQUENCY calls (default 1), in a worker thread; read when the queue is made. Its cost grows
# with the calls recorded, so both apps of this pair start as if they had already answered this many calls.
ANALYTICS_RECORDS = 10_000


# ----------------------------------------------------------------------------------------------
# the servers (child process)


def plain_app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"data": (await request.json())["data"]})

    return Starlette(routes=[Route("/noop", echo, methods=["POST"])])


def serve_plain() -> str:
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(plain_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/"


def echo(*values: Any) -> Any:
    return values[0] if len(values) == 1 else values


def floor_app(with_settings: bool):
    """A bare Gradio app: a text no-op per event setting, and a no-op with Classify's inputs and outputs."""
    import gradio as gr

    from convzoo.demos.common import allow_files, served_file

    allow_files()
    preview = served_file(np.zeros((280, 280), np.uint8))  # a constant picture, returned as Classify returns its own
    with gr.Blocks(title="no-op") as app:
        text_in, text_out = gr.Textbox(), gr.Textbox()
        button = gr.Button()
        for api_name, settings in (EVENT_SETTINGS.items() if with_settings else [("noop", {})]):
            button.click(echo, text_in, text_out, api_name=api_name, **settings)
        # same components as Classify (the image decoded by Gradio, a picture path returned), no work
        model, image, fashionize = gr.Dropdown(["a"], value="a"), gr.Image(type="pil"), gr.Checkbox()
        label, seen, info = gr.Label(), gr.Image(format="png"), gr.Markdown()
        button.click(lambda *_: ({"a": 1.0}, preview, "no-op"), [model, image, fashionize], [label, seen, info],
                     api_name="noop_classify_signature")
    return app


def launch(app, queue: dict | None = None, **settings: Any) -> str:
    app.queue(**(queue or {}))  # as convzoo.demos.launch and the Space launch the app
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
               max_file_size=MAX_UPLOAD, **settings)
    return app.local_url


def with_recorded_calls(app):
    """The app's queue as if it had answered ANALYTICS_RECORDS calls (Gradio's own record of each call, private)."""
    queue = app._queue
    for i in range(ANALYTICS_RECORDS):
        queue.event_analytics[f"earlier-{i}"] = {"time": time.time(), "status": "success", "process_time": 0.001,
                                                 "function": "noop", "session_hash": "earlier"}
    queue.events_recorded += ANALYTICS_RECORDS
    return app


def serve(store_spec: str) -> None:
    """Launch every server, print their URLs as one JSON line, and serve until stdin closes."""
    urls = {"plain": serve_plain(),
            "floor": launch(floor_app(with_settings=True)),
            "floor_app_settings": launch(floor_app(with_settings=False), APP_QUEUE_SETTINGS, **APP_LAUNCH_SETTINGS)}
    urls["floor_analytics_default"] = launch(with_recorded_calls(floor_app(with_settings=False)))
    os.environ.update(GRADIO_ENV)
    urls["floor_analytics_env"] = launch(with_recorded_calls(floor_app(with_settings=False)))
    for name in GRADIO_ENV:
        del os.environ[name]
    if store_spec != "none":
        from convzoo.demos.app import build_app

        use_gradio_env()  # as `convzoo demo` and the Space launch the app
        urls["convzoo"] = launch(build_app(open_store(store_spec)))
    print(json.dumps(urls), flush=True)
    sys.stdin.read()


def open_store(spec: str):
    from convzoo.registry import Store

    if spec == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tinystore import build_tiny_store

        return build_tiny_store(Path(tempfile.mkdtemp(prefix="convzoo-bench-")))
    return Store(Path(spec)) if spec != "default" else Store()


# ----------------------------------------------------------------------------------------------
# the client paths


class GradioHTTP:
    """One Gradio app called over plain HTTP (httpx, keep-alive), the way its browser page or curl calls it."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex[:11]
        config = self.http.get(self.url + "config").raise_for_status().json()
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as f:
            uploaded = self.http.post(self.url + "gradio_api/upload", files={"files": f}).raise_for_status().json()[0]
        return {"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def run(self, api_name: str, data: list, session: bool = True) -> list:
        body: dict[str, Any] = {"data": data}
        if session:  # as the browser sends it
            body |= {"fn_index": self.fn_index[api_name], "session_hash": self.session, "event_data": None,
                     "trigger_id": None}
        answer = self.http.post(self.url + f"gradio_api/run/{api_name}", json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"/run/{api_name}: {answer.status_code} {answer.text[:300]}")
        return answer.json()["data"]

    def queue(self, api_name: str, data: list) -> list:
        join = {"data": data, "fn_index": self.fn_index[api_name], "session_hash": self.session, "event_data": None,
                "trigger_id": None}
        self.http.post(self.url + "gradio_api/queue/join", json=join).raise_for_status()
        with self.http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": self.session}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message["msg"] == "process_completed":
                        if not message["success"]:
                            raise RuntimeError(f"{api_name}: {message['output']}")
                        output = message["output"]["data"]
        return output

    def call(self, api_name: str, data: list, session: bool = False) -> list:
        body = {"data": data, "session_hash": self.session} if session else {"data": data}
        event = self.http.post(self.url + f"gradio_api/call/{api_name}", json=body).raise_for_status()
        answer = self.http.get(self.url + f"gradio_api/call/{api_name}/{event.json()['event_id']}").raise_for_status()
        kind, data = answer.text.strip().split("\n")[-2:]  # the last event: "event: complete", "data: [...]"
        if kind != "event: complete":
            raise RuntimeError(f"/call/{api_name}: {answer.text[:300]}")
        return json.loads(data.removeprefix("data:"))

    def fetch(self, file: dict) -> bytes:
        return self.http.get(file["url"]).raise_for_status().content


@dataclass
class Cell:
    """One row of the table: a target (what is called) through a client path."""

    target: str
    path: str
    call: Callable[[], object]
    slow: bool = False  # called on every ``style_every``-th iteration only (style transfer)
    ms: list[float] = field(default_factory=list)


NOOP = "Gradio no-op (defaults)"
SIGNATURE = "no-op with Classify's components"
APP_SETTINGS = "no-op, app-wide settings"  # APP_QUEUE_SETTINGS and APP_LAUNCH_SETTINGS, printed under the table


def floor_cells(urls: dict[str, str]) -> list[Cell]:
    """The plain HTTP echo and Gradio's no-ops: on each client path, with each setting, with Classify's components."""
    import httpx
    from gradio_client import Client, handle_file

    plain = httpx.Client(timeout=60)
    floor, tuned = GradioHTTP(urls["floor"]), GradioHTTP(urls["floor_app_settings"])
    recorded, recorded_env = GradioHTTP(urls["floor_analytics_default"]), GradioHTTP(urls["floor_analytics_env"])
    client, fast_client = Client(urls["floor"], verbose=False), Client(urls["floor"], verbose=False, ssl_verify=False)
    out = [Cell("plain HTTP echo", "http", lambda: plain.post(urls["plain"] + "noop", json={"data": ["hi"]}).json()),
           Cell(NOOP, "gradio_client", lambda: client.predict("hi", api_name="/noop")),
           Cell(NOOP, FAST_CLIENT, lambda: fast_client.predict("hi", api_name="/noop")),
           Cell(NOOP, "call", lambda: floor.call("noop", ["hi"])),
           Cell(NOOP, "queue", lambda: floor.queue("noop", ["hi"])),
           Cell(NOOP, "run", lambda: floor.run("noop", ["hi"])),
           Cell(NOOP, "run, no session", lambda: floor.run("noop", ["hi"], session=False))]
    for api_name, settings in EVENT_SETTINGS.items():
        if settings:
            label = f"no-op {kwargs(settings)}"
            out += [Cell(label, "queue", lambda a=api_name: floor.queue(a, ["hi"])),
                    Cell(label, "run", lambda a=api_name: floor.run(a, ["hi"]))]
    after = f"no-op after {ANALYTICS_RECORDS:,} calls"
    out += [Cell(APP_SETTINGS, "queue", lambda: tuned.queue("noop", ["hi"])),
            Cell(APP_SETTINGS, "run", lambda: tuned.run("noop", ["hi"])),
            Cell(f"{after} (defaults)", "queue", lambda: recorded.queue("noop", ["hi"])),
            Cell(f"{after}, " + ", ".join(f"{k}={v}" for k, v in GRADIO_ENV.items()), "queue",
                 lambda: recorded_env.queue("noop", ["hi"]))]

    signature = ["a", floor.upload(EXAMPLE), True]

    def predict(c: Client) -> object:
        return c.predict("a", handle_file(str(EXAMPLE)), True, api_name="/noop_classify_signature")

    return out + [Cell(SIGNATURE, "gradio_client", lambda: predict(client)),
                  Cell(SIGNATURE, FAST_CLIENT, lambda: predict(fast_client)),
                  Cell(SIGNATURE, "queue", lambda: floor.queue("noop_classify_signature", signature)),
                  Cell(SIGNATURE, "run", lambda: floor.run("noop_classify_signature", signature))]


def convzoo_cells(url: str, classifier: str | None, style: str | None, style_side: int = 512) -> list[Cell]:
    """convzoo's Classify (a Fashion-MNIST test image) and Style (a 512x512 photo) calls, on each client path."""
    from gradio_client import Client, handle_file

    app = GradioHTTP(url)
    client, fast_client = Client(url, verbose=False), Client(url, verbose=False, ssl_verify=False)
    out = []
    if classifier:
        args = [classifier, app.upload(EXAMPLE), True]
        name = f"convzoo classify {classifier}"

        def classify(c: Client) -> object:
            return c.predict(classifier, handle_file(str(EXAMPLE)), True, api_name="/classify")

        out += [Cell(name, "gradio_client", lambda: classify(client)),
                Cell(name, FAST_CLIENT, lambda: classify(fast_client)),
                Cell(name, "call", lambda: app.call("classify", args)),
                Cell(name, "call, session", lambda: app.call("classify", args, session=True)),
                Cell(name, "queue", lambda: app.queue("classify", args)),
                Cell(name, "run", lambda: app.run("classify", args)),
                Cell(name, "run, no session", lambda: app.run("classify", args, session=False)),
                Cell(name, "run + GET preview", lambda: app.fetch(app.run("classify", args)[1]))]
    if style:
        import skimage.data
        from PIL import Image

        photo = Path(tempfile.mkdtemp()) / "astronaut-512.png"
        Image.fromarray(skimage.data.astronaut()).save(photo)  # 512x512
        style_args = [style, app.upload(photo), 1.0, style_side]
        name = f"convzoo stylize {style} 512x512"

        def stylize(c: Client) -> object:
            return c.predict(style, handle_file(str(photo)), 1.0, style_side, api_name="/stylize")

        out += [Cell(name, "gradio_client", lambda: stylize(client), slow=True),
                Cell(name, FAST_CLIENT, lambda: stylize(fast_client), slow=True),
                Cell(name, "queue", lambda: app.queue("stylize", style_args), slow=True),
                Cell(name, "run", lambda: app.run("stylize", style_args), slow=True)]
    return out


# ----------------------------------------------------------------------------------------------
# measuring and reporting


def measure(table: list[Cell], iterations: int, style_every: int, gap_s: float, warmup: int = 3, seed: int = 0) -> None:
    """One call per cell per iteration, in a shuffled order; slow cells only every ``style_every`` iterations.

    ``gap_s`` between calls, as between a user's clicks: work a server defers until after its answer (Gradio's
    analytics, gradio_client's threads) finishes there instead of landing on the next cell's call.
    """
    for cell in table:
        for _ in range(1 if cell.slow else warmup):
            cell.call()
    order = random.Random(seed)
    for i in range(iterations):
        due = [c for c in table if not c.slow or i % style_every == 0]
        order.shuffle(due)
        for cell in due:
            start = time.perf_counter()
            cell.call()
            cell.ms.append((time.perf_counter() - start) * 1e3)
            time.sleep(gap_s)


def p(ms: list[float], q: float) -> float:
    return float(np.percentile(ms, q))


FLOOR_PATH = {"run + GET preview": "run", "call, session": "call"}  # paths measured for convzoo's calls only


def ratios(table: list[Cell], cell: Cell) -> tuple[float | None, float | None]:
    """The cell's p50 over the bare no-op's p50 on the same client path, and (for Classify) over the p50 of the
    no-op with Classify's components: Gradio's own floor for a call that takes and gives an image."""
    path = FLOOR_PATH.get(cell.path, cell.path)
    p50 = {(c.target, c.path): p(c.ms, 50) for c in table}
    noop, signature = p50.get((NOOP, path)), p50.get((SIGNATURE, cell.path))
    over_noop = p(cell.ms, 50) / noop if noop and cell.path != "http" else None
    over_signature = p(cell.ms, 50) / signature if signature and cell.target.startswith("convzoo classify") else None
    return over_noop, over_signature


def print_table(table: list[Cell]) -> None:
    print("\n| target | client path | n | p50 ms | p95 ms | p50 / no-op p50, same path | "
          "p50 / Classify-signature no-op p50 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for c in table:
        cells = [f"{r:.2f}" if r else "" for r in ratios(table, c)]
        print(f"| {c.target} | {c.path} | {len(c.ms)} | {p(c.ms, 50):.1f} | {p(c.ms, 95):.1f} | {' | '.join(cells)} |")
    print(f"\n{APP_SETTINGS}: queue({kwargs(APP_QUEUE_SETTINGS)}), launch({kwargs(APP_LAUNCH_SETTINGS)})")


def kwargs(settings: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())


def write_json(table: list[Cell], path: Path, meta: dict) -> None:
    rows = []
    for c in table:
        over_noop, over_signature = ratios(table, c)
        rows.append({"target": c.target, "path": c.path, "n": len(c.ms), "p50_ms": round(p(c.ms, 50), 2),
                     "p95_ms": round(p(c.ms, 95), 2), "max_ms": round(max(c.ms), 2),
                     "p50_over_noop_p50": over_noop and round(over_noop, 3),
                     "p50_over_signature_noop_p50": over_signature and round(over_signature, 3),
                     "ms": [round(v, 3) for v in c.ms]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def start_servers(store_spec: str) -> tuple[subprocess.Popen, dict[str, str]]:
    child = subprocess.Popen([sys.executable, __file__, "--serve", store_spec], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"the servers did not start (exit status {child.wait()})")
    return child, json.loads(line)


def pick(names: list[str], wanted: str | None, prefer: str = "") -> str | None:
    return wanted or next((n for n in names if prefer in n), names[0] if names else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a convzoo demo already running (the floors are still launched here)")
    parser.add_argument("--store", type=Path)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--classifier")
    parser.add_argument("--style")
    parser.add_argument("-n", type=int, default=100, help="iterations (calls per fast cell)")
    parser.add_argument("--style-every", type=int, default=10, help="one style transfer per this many iterations")
    parser.add_argument("--gap-ms", type=float, default=30, help="pause after each call")
    parser.add_argument("--quick", action="store_true", help="5 iterations, no JSON")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)

    store_spec = "tiny" if args.tiny else str(args.store) if args.store else "default"
    store = open_store(store_spec)
    classifier = pick(store.names("classification"), args.classifier, prefer="fashion")
    style = pick(store.names("style"), args.style)
    iterations = 5 if args.quick else args.n
    meta = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
            "load_average_before": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "gradio": version("gradio"), "gradio_client": version("gradio_client"), "store": store_spec,
            "classifier": classifier, "style": style, "iterations": iterations, "style_every": args.style_every,
            "event_settings": EVENT_SETTINGS, "app_queue_settings": APP_QUEUE_SETTINGS,
            "app_launch_settings": APP_LAUNCH_SETTINGS, "convzoo_gradio_env": GRADIO_ENV,
            "analytics_records": ANALYTICS_RECORDS, "gap_ms": args.gap_ms}
    print(" ".join(f"{k} {meta[k]}" for k in ("machine", "load_average_before", "python", "gradio", "gradio_client",
                                               "store", "classifier", "style", "iterations")))
    child, urls = start_servers("none" if args.url else store_spec)
    if args.url:
        urls["convzoo"] = args.url
    try:
        table = floor_cells(urls) + (convzoo_cells(urls["convzoo"], classifier, style) if "convzoo" in urls else [])
        measure(table, iterations, args.style_every, args.gap_ms / 1e3)
    finally:
        child.stdin.close()
        child.terminate()
        child.wait(timeout=30)
    print_table(table)
    if not args.quick:
        write_json(table, args.json, meta)


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


if __name__ == "__main__":
    main()
