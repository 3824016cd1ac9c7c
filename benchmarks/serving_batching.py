"""Dynamic batching, measured: `convzoo serve` with batching off and on, side by side, in one run.

For each setting it starts the real server (a subprocess on a free port), then
  * N concurrent clients for T seconds on the throughput model (by default the largest classifier):
    requests/s, p50/p95/p99, errors;
  * one client for T/2 seconds on the overhead-bound model: p50 latency;
and prints them next to onnxruntime in this process on the same models (the limit).

    python benchmarks/serving_batching.py                      # a synthetic store (no trained models needed)
    python benchmarks/serving_batching.py --store ~/.cache/convzoo --model vgg16-fashion \
        --latency-model lenet5-fashion

Requests are KServe v2 with binary tensors, as tritonclient sends them, over keep-alive connections.
Targets (issue 4): >= 2.5x requests/s with batching on at 32 clients; one client's p50 at most 2 ms
above in-process onnxruntime on LeNet-5.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from convzoo.registry import Store  # noqa: E402
from convzoo.serving.background import wait_ready  # noqa: E402
from convzoo.runtime import load_model


def synthetic_store(root: Path) -> tuple[Store, str, str]:
    """An AlexNet-like classifier (small convolutional features, a 12M-parameter fully connected head) and the
    tiny LeNet-sized one. Like AlexNet's and VGG's heads, the big matrices make batch 1 memory-bound: each
    image reads every weight once, a batch reads them once for all, which is what batching buys on a CPU."""
    import dataclasses

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tinystore import build_tiny_store

    from convzoo import registry
    from convzoo.packaging import write_model

    build_tiny_store(root)
    rng = np.random.default_rng(0)

    def weight(name: str, shape: tuple[int, ...], fan_in: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, (2 / fan_in) ** 0.5, shape).astype(np.float32), name)

    zeros = lambda name, n: numpy_helper.from_array(np.zeros(n, np.float32), name)  # noqa: E731
    inits = [weight("wc", (64, 3, 3, 3), 27), zeros("bc", 64),
             weight("w1", (2048, 4096), 4096), zeros("b1", 2048),
             weight("w2", (2048, 2048), 2048), zeros("b2", 2048),
             weight("w3", (10, 2048), 2048), zeros("b3", 10)]
    nodes = [helper.make_node("Conv", ["image", "wc", "bc"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),  # 32 -> 16
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),  # 16 -> 8: 64*8*8 = 4096
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h1"], transB=1), helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], transB=1), helper.make_node("Relu", ["h2"], ["a2"]),
             helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "bench_alexnet_like",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = dataclasses.replace(registry.get("resnet18-cifar10"), name="bench-alexnet-like")
    write_model(root, entry, model, metrics={"note": "untrained benchmark model"}, manifest_extra={},
                source={"dataset": "none", "note": "benchmarks/serving_batching.py"})
    return Store(root), "bench-alexnet-like", "tiny-fashion"


def largest_classifier(store: Store) -> str:
    models = [m for m in store.models("classification") if m.onnx_path.is_file()]
    return max(models, key=lambda m: m.size_bytes).name


def smallest_classifier(store: Store) -> str:
    models = [m for m in store.models("classification") if m.onnx_path.is_file()]
    return min(models, key=lambda m: m.size_bytes).name


def sample_input(store: Store, name: str) -> np.ndarray:
    model = load_model(name, store)
    shape = [1 if not isinstance(d, int) or d < 1 else d for d in model.input_shape]
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def binary_request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def in_process(store: Store, name: str, x: np.ndarray, seconds: float, threads: int | None,
               batch: int = 1) -> tuple[float, float]:
    """(p50 latency in ms, images/s) of onnxruntime in this process at ``batch``."""
    from convzoo.runtime import OnnxModel

    model = OnnxModel(store.get(name).onnx_path, threads=threads)
    xb = np.repeat(x, batch, axis=0)
    for _ in range(5):
        model.run(xb)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        model.run(xb)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1000), batch * len(times) / sum(times)


def drive(port: int, model: str, body: bytes, headers: dict[str, str], clients: int, seconds: float) -> dict:
    """``clients`` threads, each on its own keep-alive connection, as fast as answers come back."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        barrier.wait()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if ok:
                latencies[k].append(time.perf_counter() - start)
            else:
                errors[k] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - began
    flat = np.array([v for per in latencies for v in per]) * 1000
    return {"requests_per_s": len(flat) / elapsed, "errors": sum(errors), "requests": len(flat),
            **{f"p{q}": float(np.percentile(flat, q)) if len(flat) else float("nan") for q in (50, 95, 99)}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(store_root: str, models: list[str], delay_ms: float, max_batch: int, threads: int | None):
    port = free_port()
    command = [sys.executable, "-m", "convzoo.cli", "serve", "--store", store_root, "--port", str(port),
               "--models", ",".join(models), "--max-batch", str(max_batch), "--batch-delay-ms", str(delay_ms)]
    if threads:
        command += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "CONVZOO_TOKEN"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    wait_ready(f"http://127.0.0.1:{port}", timeout=120)
    return process, port


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="model store (default: build a synthetic one in a temporary folder)")
    p.add_argument("--model", help="classifier for the concurrent test (default: the largest in the store)")
    p.add_argument("--latency-model", help="overhead-bound classifier for one client (default: the smallest)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--delay-ms", type=float, default=2.0, help="the batching window when batching is on")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            store = Store(args.store)
            model = args.model or largest_classifier(store)
            latency_model = args.latency_model or smallest_classifier(store)
            store_root = args.store
        else:
            store, model, latency_model = synthetic_store(Path(tmp) / "store")
            store_root = str(store.roots[0])
        x, small = sample_input(store, model), sample_input(store, latency_model)
        body, headers = binary_request(x)
        small_body, small_headers = binary_request(small)
        limit_p50, limit_rps = in_process(store, model, x, args.seconds / 4, args.threads)
        _, limit_batch_rps = in_process(store, model, x, args.seconds / 4, args.threads, batch=args.max_batch)
        small_p50, _ = in_process(store, latency_model, small, args.seconds / 4, args.threads)

        results = {}
        for label, delay in (("off", 0.0), ("on", args.delay_ms)):
            process, port = run_server(store_root, [model, latency_model], delay, args.max_batch, args.threads)
            try:
                drive(port, model, body, headers, args.clients, 1.0)  # warm the connections and thread pools
                concurrent = drive(port, model, body, headers, args.clients, args.seconds)
                single = drive(port, latency_model, small_body, small_headers, 1, args.seconds / 2)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
            results[label] = {"concurrent": concurrent, "single": single}

    off, on = results["off"]["concurrent"], results["on"]["concurrent"]
    cpus = os.cpu_count()
    print(f"\nconvzoo serve, dynamic batching off vs on ({cpus} CPUs, load average {os.getloadavg()[0]:.1f})")
    print(f"throughput model: {model}; {args.clients} clients, {args.seconds:.0f} s each; max batch {args.max_batch}, "
          f"delay {args.delay_ms} ms when on")
    print(f"  in-process onnxruntime: batch 1 p50 {limit_p50:.2f} ms = {limit_rps:.0f} images/s; "
          f"batch {args.max_batch}: {limit_batch_rps:.0f} images/s (the limit)")
    print(f"  {'':>12} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for label, r in (("batching off", off), ("batching on", on)):
        print(f"  {label:>12} {r['requests_per_s']:9.1f} {r['p50']:9.2f} {r['p95']:9.2f} {r['p99']:9.2f} "
              f"{r['errors']:7d}")
    print(f"  on/off: throughput x{on['requests_per_s'] / off['requests_per_s']:.2f}, "
          f"p50 x{on['p50'] / off['p50']:.2f}, "
          f"p95 x{on['p95'] / off['p95']:.2f}   (target: throughput >= 2.5x, 0 errors)")
    print(f"overhead-bound model: {latency_model}; one client; in-process onnxruntime p50 {small_p50:.3f} ms")
    for label in ("off", "on"):
        single = results[label]["single"]
        print(f"  batching {label:>3}: p50 {single['p50']:.3f} ms = in-process + {single['p50'] - small_p50:.3f} ms "
              f"(target: <= 2 ms); {single['errors']} errors")


if __name__ == "__main__":
    main()
