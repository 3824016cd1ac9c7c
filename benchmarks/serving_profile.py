"""Where one v2 infer request's CPU goes in `convzoo serve`, stage by stage, in this process.

    python benchmarks/serving_profile.py                          # LeNet-5 and GoogLeNet, JSON and binary
    python benchmarks/serving_profile.py --models lenet5-fashion --repeats 3000

Each stage runs on the model's first test image (1x1x28x28 FP32), the request `benchmarks/serving_peers.py` sends:
parsing the JSON part, checking it against the protocol and the model's signature (pydantic, numpy), one
onnxruntime run at batch 1, encoding the answer, and the whole ASGI app without sockets (the event loop's CPU
per request, on uvloop as uvicorn runs it; inference runs in the batcher's thread). Beside each stage that was
changed for speed, the way it was done before, measured in the same run: the standard library's JSON parse and
FastAPI's routing (the app without `kserve.InferLane`). Sockets and HTTP parsing are not here: the difference
between this and `serving_peers.py`'s CPU per request is uvicorn's, the kernel's and the log line's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from serving_peers import binary_request, json_request, sample_images  # noqa: E402

from convzoo.registry import Store  # noqa: E402
from convzoo.serving import create_app, kserve, tensors  # noqa: E402


def per_call_us(fn, repeats: int) -> float:
    """The median of 5 timings of ``repeats`` calls, in µs per call (thread CPU time: the stage's own work)."""
    fn()
    samples = []
    for _ in range(5):
        start = time.thread_time()
        for _ in range(repeats):
            fn()
        samples.append((time.thread_time() - start) / repeats * 1e6)
    return statistics.median(samples)


def asgi_scope(path: str, body: bytes, headers: dict[str, str]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items())]}


async def app_us(apps: dict, path: str, body: bytes, headers: dict[str, str], repeats: int) -> dict[str, float]:
    """The event loop thread's CPU per request through each whole app (middleware, routing, decode, batcher,
    encode), in µs: the median of 10 rounds, the apps taking turns within each round so noise falls on all."""
    async def call(app) -> None:
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await app(asgi_scope(path, body, headers), receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{path} answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")

    samples: dict[str, list[float]] = {name: [] for name in apps}
    for app in apps.values():
        for _ in range(50):
            await call(app)
    for _ in range(10):
        for name, app in apps.items():
            start = time.thread_time()
            for _ in range(repeats // 10):
                await call(app)
            samples[name].append((time.thread_time() - start) / (repeats // 10) * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def without_lane(app):
    """The same app with FastAPI's router taking infer requests, as before ``kserve.InferLane``."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not kserve.InferLane]
    return app


async def profile(store: Store, model: str, repeats: int) -> list[tuple[str, str, float, float | None]]:
    apps = {"lane": create_app(store, [model], load_in_background=False),
            "router": without_lane(create_app(store, [model], load_in_background=False))}
    rows = []
    async with apps["lane"].router.lifespan_context(apps["lane"]), \
            apps["router"].router.lifespan_context(apps["router"]):
        served = apps["lane"].state.pool.get(model)
        limits = apps["lane"].state.limits
        x = sample_images(store.roots[0], model)[:1]
        path = f"/v2/models/{model}/infer"
        for kind, (body, headers) in (("json", json_request(served.inputs[0].name, x)),
                                      ("binary", binary_request(served.inputs[0].name, served.outputs[0].name, x))):
            header_length = headers.get("Inference-Header-Content-Length")
            json_part = body[:int(header_length)] if header_length else body

            def parse():
                return tensors.split_body(body, header_length, limits.max_json, limits.max_json_values)

            def parse_stdlib():
                return json.loads(json_part, object_pairs_hook=tensors._unique_keys)

            payload, binary = parse()

            def check():  # a fresh copy: decode_request takes the parse's own note out of the payload
                return tensors.decode_request(dict(payload), binary, served.inputs, served.outputs,
                                              max_batch=limits.max_batch)

            def pydantic_only():
                return tensors.InferRequestBody.model_validate(
                    {k: v for k, v in payload.items() if k != tensors._HAS_BOOLEANS})

            decoded = check()
            feeds = dict(decoded.inputs)
            results = served.run(feeds)
            rows.append((kind, "parse the JSON part (orjson; stdlib before)", per_call_us(parse, repeats),
                         per_call_us(parse_stdlib, repeats)))
            rows.append((kind, "check it against the protocol and the model, make the arrays",
                         per_call_us(check, repeats), None))
            rows.append((kind, "of which pydantic on the whole request (data as list[Any])",
                         per_call_us(pydantic_only, repeats), None))
            rows.append((kind, "onnxruntime run, batch 1 (its calling thread)", per_call_us(lambda: served.run(feeds),
                                                                                              max(50, repeats // 10)),
                         None))
            rows.append((kind, "encode the answer", per_call_us(
                lambda: tensors.encode_response(model, decoded, results, served.model.labels), repeats), None))
            whole = await app_us(apps, path, body, headers, repeats)
            rows.append((kind, "whole app, event loop thread (FastAPI routing before)", whole["lane"], whole["router"]))
    return rows


def event_loop():
    """uvloop where it is installed, as uvicorn runs the service."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=str(ROOT / "models"))
    p.add_argument("--models", default="lenet5-fashion,googlenet-fashion")
    p.add_argument("--repeats", type=int, default=1000, help="calls per timing (5 timings, the median kept)")
    args = p.parse_args()
    logging.disable(logging.INFO)  # the per-request log line is measured by serving_peers.py, with its handler
    store = Store([Path(args.store)])
    print("| model | request | stage | µs now | µs before |\n|---|---|---|---:|---:|")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        with asyncio.Runner(loop_factory=event_loop()) as runner:
            rows = runner.run(profile(store, model, args.repeats))
        for kind, stage, now, before in rows:
            print(f"| {model} | {kind} | {stage} | {now:,.0f} | {'' if before is None else f'{before:,.0f}'} |",
                  flush=True)


if __name__ == "__main__":
    main()
