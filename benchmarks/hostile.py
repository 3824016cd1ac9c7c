"""The service under attack, measured: peak memory, liveness while bombs are in flight, stalled clients.

Starts the real `convzoo serve` (a subprocess on a free port, default limits) on the shipped store and
  * sends the worst requests we know of, many at once: gzip bombs to every kind of model, tiny requests
    declaring huge U-Net and style inputs, the largest inputs the limits admit, 2048x2048 images to the
    style nets; then reads the server's peak resident memory (VmHWM in /proc);
  * keeps 8 gzip bombs in flight and times /v2/health/live meanwhile;
  * stalls 200 connections (half a header, or half a body) and times how soon the server cuts them off,
    while a new client is served.

    python benchmarks/hostile.py [--store models] [--json out.json]

Goals (issue 9): peak RSS < 2 GiB; liveness < 100 ms with 8 bombs in flight; stalled clients cut off.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convzoo.serving.background import wait_ready  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "convzoo.cli", "serve", "--store", str(store), "--port",
                                str(port)], env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, timeout=180)
    return process, url


def peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def post(url: str, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 300) -> int:
    request = urllib.request.Request(url + path, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def gzip_bomb(inflated: int = 64 << 20) -> bytes:
    return gzip.compress(b'{"inputs": [{"name": "image", "shape": [1, 1, 64, 64], "datatype": "FP32", "data": ['
                         + b"0," * (inflated // 2) + b"0]}]}", 6)


def binary_infer(shape: tuple[int, ...], datatype: str = "UINT8") -> tuple[bytes, dict[str, str]]:
    dtype = {"UINT8": np.uint8, "FP32": np.float32}[datatype]
    data = np.zeros(shape, dtype).tobytes()
    header = json.dumps({"inputs": [{"name": "image", "shape": list(shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": len(data)}}]}).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def png_bytes(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 90).save(out, format="PNG")
    return out.getvalue()


def worst_requests(style: str = "style-starry-night", unet: str = "unet-membranes") -> list[tuple[str, int, Callable]]:
    """(what, copies sent at once, send(url) -> status)."""
    bomb = gzip_bomb()
    big_png = png_bytes((2048, 2048))
    unet_2048, unet_2048_headers = binary_infer((1, 1, 2048, 2048))
    style_1024, style_1024_headers = binary_infer((1, 3, 1024, 1024), "FP32")
    tiny_huge = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 4096, 4096], "datatype": "UINT8",
                                        "data": [0]}]}).encode()
    gz = {"Content-Encoding": "gzip"}
    return [
        ("gzip bomb (64 MiB inflated) to the U-Net", 8, lambda url: post(url, f"/v2/models/{unet}/infer", bomb, gz)),
        ("gzip bomb to a style net", 8, lambda url: post(url, f"/v2/models/{style}/infer", bomb, gz)),
        ("tiny request declaring a 4096x4096 U-Net input", 8,
         lambda url: post(url, f"/v2/models/{unet}/infer", gzip.compress(tiny_huge), gz)),
        ("U-Net 2048x2048, binary (runs tiled)", 2,
         lambda url: post(url, f"/v2/models/{unet}/infer", unet_2048, unet_2048_headers)),
        ("style 1024x1024 FP32, binary", 2,
         lambda url: post(url, f"/v2/models/{style}/infer", style_1024, style_1024_headers)),
        ("2048x2048 PNG to a style net, max_side=1024", 3,
         lambda url: post(url, f"/v1/models/{style}/predict?max_side=1024", big_png)),
        ("2048x2048 PNG to the U-Net", 2, lambda url: post(url, f"/v1/models/{unet}/predict", png_bytes((2048, 2048),
                                                                                                          "L"))),
    ]


def attack(url: str, requests: list[tuple[str, int, Callable]]) -> list[tuple[str, dict[int, int]]]:
    """Every kind of request at once; the answers' status codes counted per kind."""
    with ThreadPoolExecutor(64) as pool:
        futures = [(what, pool.submit(send, url)) for what, copies, send in requests for _ in range(copies)]
        counts: dict[str, dict[int, int]] = {}
        for what, future in futures:
            status = future.result()
            counts.setdefault(what, {})
            counts[what][status] = counts[what].get(status, 0) + 1
    return list(counts.items())


def liveness_during_bombs(url: str, unet: str = "unet-membranes", bombs: int = 8,
                          seconds: float = 5.0) -> dict[str, float]:
    """/v2/health/live latencies (ms) while ``bombs`` clients keep a gzip bomb in flight each, for ``seconds``.

    The bomb is the worst kind: a short JSON header followed by what claims to be 64 MiB of binary
    tensor data, so the server inflates all of it before it can tell the request is wrong.
    """
    bomb = gzip_bomb()
    headers = {"Content-Encoding": "gzip", "Inference-Header-Content-Length": "100"}
    stop = time.perf_counter() + seconds
    statuses: set[int] = set()
    sent = 0

    def bomber() -> None:
        nonlocal sent
        while time.perf_counter() < stop:
            statuses.add(post(url, f"/v2/models/{unet}/infer", bomb, headers))
            sent += 1

    threads = [threading.Thread(target=bomber) for _ in range(bombs)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    latencies: list[float] = []
    while time.perf_counter() < stop:
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/v2/health/live", timeout=30) as response:
            response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    return {"probes": len(latencies), "p50_ms": statistics.median(latencies), "max_ms": max(latencies),
            "bombs_sent": sent, "bomb_statuses": sorted(statuses)}


def stall(url: str, connections: int = 200) -> dict[str, float]:
    """Open ``connections`` that stall (half with half a header, half with half a body); seconds until all
    are cut off, and a new client's latency meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for i in range(connections):
        s = socket.create_connection((host, int(port)), timeout=120)
        s.sendall(b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                  b"POST /v2/models/lenet5-fashion/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n{")
        socks.append(s)
    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/v2/health/live", timeout=10) as response:
        response.read()
    new_client_ms = (time.perf_counter() - start) * 1000
    cut, last = 0, 0.0
    for s in socks:
        try:
            while s.recv(4096):
                pass
            cut += 1
            last = max(last, time.perf_counter() - start)
        except OSError:
            pass
        s.close()
    return {"connections": connections, "cut_off": cut, "all_cut_within_s": last, "new_client_ms": new_client_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(ROOT / "models"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    process, url = start_server(Path(args.store))
    try:
        at_ready = peak_rss(process.pid)
        answers = attack(url, worst_requests())
        peak = peak_rss(process.pid)
        liveness = liveness_during_bombs(url)
        stalled = stall(url)
        peak = max(peak, peak_rss(process.pid))
    finally:
        process.terminate()
        process.wait(30)
    print("| worst request | sent at once | answers |\n| --- | --- | --- |")
    for what, counts in answers:
        print(f"| {what} | {sum(counts.values())} | {', '.join(f'{n}x {s}' for s, n in sorted(counts.items()))} |")
    print(f"\npeak RSS: {peak / 2**20:,.0f} MiB (after loading every model: {at_ready / 2**20:,.0f} MiB; goal < 2048)")
    print(f"liveness with 8 bombs in flight: p50 {liveness['p50_ms']:.1f} ms, max {liveness['max_ms']:.1f} ms over "
          f"{liveness['probes']} probes (goal < 100); {liveness['bombs_sent']} bombs answered "
          f"{liveness['bomb_statuses']}")
    print(f"stalled: {stalled['cut_off']}/{stalled['connections']} cut off within {stalled['all_cut_within_s']:.1f} s; "
          f"a new client meanwhile: {stalled['new_client_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"answers": answers, "peak_rss": peak, "rss_at_ready": at_ready,
                                               "liveness": liveness, "stalled": stalled}, indent=2))


if __name__ == "__main__":
    main()
