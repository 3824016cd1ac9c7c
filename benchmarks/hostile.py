"""The service under attack, measured: peak memory, liveness while bombs are in flight, stalled and
dripping clients.

Starts the real `convzoo serve` (a subprocess on a free port, default limits) on the shipped store and
  * sends the worst requests we know of, many at once: gzip bombs to every kind of model, tiny requests
    declaring huge U-Net and style inputs, the largest inputs the limits admit, 2048x2048 images to the
    style nets, and issue 21's: thin U-Net inputs (a 16x99984 tensor, a 100000x1 PNG), a 16x40000 PNG
    to a style net, a JPEG of 20,000 scans, a 1 MB header, a million headers, integers of 5,000 digits;
    then reads the server's peak resident memory (VmHWM in /proc);
  * keeps 8 gzip bombs in flight and times /v2/health/live meanwhile;
  * stalls 200 connections (half a header, or half a body) and times how soon the server cuts them off,
    while a new client is served;
  * keeps 1,100 chunked bodies dripping a byte every 5 s (reconnecting when cut) and probes liveness;
  * keeps 16 bodies declaring 64 MiB dripping and times a normal LeNet-5 request meanwhile.

    python benchmarks/hostile.py [--store models] [--checkout DIR] [--json out.json]

``--checkout`` serves from another checkout of convzoo (an earlier commit, for before/after).
Goals (issues 9 and 21): peak RSS < 2 GiB; liveness < 100 ms with 8 bombs in flight; stalled clients cut
off; liveness within 1 s while 1,100 connections drip; a normal request within 5 s beside 16 declared
64 MiB bodies; no 5xx and no dropped connection for any request.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import http.client
import io
import json
import os
import resource
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


def start_server(store: Path, env: dict[str, str] | None = None,
                 checkout: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **(env or {})}
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    process = subprocess.Popen([sys.executable, "-m", "convzoo.cli", "serve", "--store", str(store), "--port",
                                str(port)], env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, timeout=180)
    return process, url


def peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def post(url: str, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 300) -> int:
    """The answer's status; 0 where the connection was dropped without one."""
    request = urllib.request.Request(url + path, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except (OSError, http.client.HTTPException):
        return 0


def raw(url: str, data: bytes, timeout: float = 120) -> int:
    """Send raw bytes (what urllib will not send); the answer's status, 0 where none came."""
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            try:
                sock.sendall(data)
            except OSError:  # answered and closed while we sent
                pass
            answer = b""
            while len(answer) < 12 and (chunk := sock.recv(4096)):
                answer += chunk
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0


def many_scan_jpeg(scans: int = 20_000) -> bytes:
    """A JPEG whose stream holds ``scans`` start-of-scan segments (a decoder would make a pass for each)."""
    out = io.BytesIO()
    Image.new("RGB", (512, 512), 90).save(out, format="JPEG", progressive=True)
    data = out.getvalue()
    return data[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * scans + data[-2:]


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
    thin, thin_headers = binary_infer((1, 1, 16, 99984))
    digits = b"9" * 5000
    huge_int = b'{"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [' + digits + b"]}]}"
    fp16 = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP16",
                                   "data": [70000] * 784}]}).encode()
    lenet = "/v2/models/lenet5-fashion/infer"
    big_header = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    many_headers = (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-%d: v\r\n" % i for i in range(1_000_000)) + b"\r\n")
    superscript = (f"POST {lenet} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nInference-Header-Content-Length: "
                   "\u00b2\r\nContent-Length: 2\r\n\r\n{}").encode("latin-1")
    return [
        ("a 16x99984 U-Net input, binary (thin: padded to whole tiles)", 2,
         lambda url: post(url, f"/v2/models/{unet}/infer", thin, thin_headers)),
        ("a 100000x1 PNG to the U-Net", 2, lambda url: post(url, f"/v1/models/{unet}/predict",
                                                            png_bytes((100000, 1), "L"))),
        ("a 16x40000 PNG to a style net", 2, lambda url: post(url, f"/v1/models/{style}/predict",
                                                              png_bytes((16, 40000)))),
        ("a JPEG of 20,000 scans", 2, lambda url: post(url, "/v1/models/lenet5-fashion/predict", many_scan_jpeg())),
        ("a 1 MB header", 8, lambda url: raw(url, big_header)),
        ("1,000,000 headers (13 MB)", 8, lambda url: raw(url, many_headers)),
        ("an integer of 5,000 digits in JSON data", 4, lambda url: post(url, lenet, huge_int)),
        ("Inference-Header-Content-Length: \u00b2", 4, lambda url: raw(url, superscript)),
        ("FP16 data of integers past 65504", 4, lambda url: post(url, lenet, fp16)),
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


def dripping(url: str, connections: int = 1100, every_s: float = 5.0, seconds: float = 45.0,
             declared: int | None = None) -> dict:
    """Keep ``connections`` bodies dripping a byte every ``every_s`` (chunked, or with a declared
    ``Content-Length``), each reopened when the server cuts it; meanwhile probe liveness every 0.5 s and,
    with ``declared``, time a LeNet-5 request every 2 s. How long each dripping connection lived, too."""
    host, port = url.removeprefix("http://").split(":")
    length = b"Content-Length: %d" % declared if declared else b"Transfer-Encoding: chunked"
    head = b"POST /v2/models/lenet5-fashion/infer HTTP/1.1\r\nHost: x\r\n" + length + b"\r\n\r\n"
    drop = b"{" if declared else b"1\r\n{\r\n"
    stop = time.monotonic() + seconds
    lived: list[float] = []
    opened = 0

    def open_one() -> tuple[socket.socket, float] | None:
        nonlocal opened
        try:
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(head)
            sock.setblocking(False)
            opened += 1
            return sock, time.monotonic()
        except OSError:
            return None

    def dripper() -> None:
        socks = [s for s in (open_one() for _ in range(connections)) if s is not None]
        while time.monotonic() < stop:
            time.sleep(every_s)
            kept = []
            for sock, since in socks:
                try:
                    sock.send(drop)
                    if sock.recv(4096):  # the server answered (408): it cuts the connection
                        raise ConnectionError
                    raise ConnectionError  # b"": closed
                except BlockingIOError:
                    kept.append((sock, since))
                except OSError:
                    lived.append(time.monotonic() - since)
                    sock.close()
                    again = open_one()
                    if again is not None:
                        kept.append(again)
            socks = kept
        for sock, _ in socks:
            sock.close()

    thread = threading.Thread(target=dripper)
    thread.start()
    time.sleep(min(3.0, seconds / 3))
    probes, statuses, requests = [], collections.Counter(), []
    body = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": [0.5] * 784}]}).encode()
    while time.monotonic() < stop:
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/v2/health/live", timeout=30) as response:
                response.read()
                statuses[response.status] += 1
        except urllib.error.HTTPError as e:
            statuses[e.code] += 1
        except OSError:
            statuses["dropped"] += 1
        probes.append((time.perf_counter() - start) * 1000)
        if declared and len(probes) % 4 == 0:
            start = time.perf_counter()
            status = post(url, "/v2/models/lenet5-fashion/infer", body, timeout=60)
            requests.append(((time.perf_counter() - start) * 1000, status))
        time.sleep(0.5)
    thread.join()
    return {"connections": connections, "opened": opened, "probe_statuses": dict(statuses),
            "probe_p50_ms": statistics.median(probes), "probe_max_ms": max(probes),
            "lived_s_median": statistics.median(lived) if lived else None, "lived_s_max": max(lived) if lived else None,
            "cut": len(lived), "requests": requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(ROOT / "models"))
    parser.add_argument("--checkout", type=Path, help="serve from this checkout of convzoo (before/after)")
    parser.add_argument("--drip-seconds", type=float, default=45.0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client opens 1,100 connections
    process, url = start_server(Path(args.store), checkout=args.checkout)
    try:
        at_ready = peak_rss(process.pid)
        answers = attack(url, worst_requests())
        peaks = {"worst requests at once": peak_rss(process.pid)}
        liveness = liveness_during_bombs(url)
        peaks["8 bombs in flight"] = peak_rss(process.pid)
        stalled = stall(url)
        drips = dripping(url, seconds=args.drip_seconds)
        peaks["1,100 dripping"] = peak_rss(process.pid)
        declared = dripping(url, connections=16, declared=64 << 20, seconds=min(30.0, args.drip_seconds))
        peak = peak_rss(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    print("| worst request | sent at once | answers |\n| --- | --- | --- |")
    for what, counts in answers:
        print(f"| {what} | {sum(counts.values())} | {', '.join(f'{n}x {s}' for s, n in sorted(counts.items()))} |")
    print(f"\npeak RSS: {peak / 2**20:,.0f} MiB (after loading every model: {at_ready / 2**20:,.0f} MiB; goal < 2048); "
          + ", ".join(f"after {phase}: {value / 2**20:,.0f} MiB" for phase, value in peaks.items()))
    print(f"liveness with 8 bombs in flight: p50 {liveness['p50_ms']:.1f} ms, max {liveness['max_ms']:.1f} ms over "
          f"{liveness['probes']} probes (goal < 100); {liveness['bombs_sent']} bombs answered "
          f"{liveness['bomb_statuses']}")
    print(f"stalled: {stalled['cut_off']}/{stalled['connections']} cut off within {stalled['all_cut_within_s']:.1f} s; "
          f"a new client meanwhile: {stalled['new_client_ms']:.1f} ms")
    print(f"1,100 dripping bodies ({drips['opened']} opened in {args.drip_seconds:g} s, reopened when cut): liveness "
          f"p50 {drips['probe_p50_ms']:.1f} ms, max {drips['probe_max_ms']:.1f} ms, answers {drips['probe_statuses']}; "
          f"a dripping connection lived {drips['lived_s_median']} s (median), {drips['lived_s_max']} s (max), "
          f"{drips['cut']} cut")
    times = [ms for ms, _ in declared["requests"]]
    print(f"16 bodies declaring 64 MiB, dripping: LeNet-5 requests {[status for _, status in declared['requests']]}, "
          f"{max(times) if times else float('nan'):.0f} ms at most; liveness max {declared['probe_max_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"answers": answers, "peak_rss": peak, "rss_at_ready": at_ready,
                                               "liveness": liveness, "stalled": stalled, "dripping": drips,
                                               "declared": declared}, indent=2, default=str))


if __name__ == "__main__":
    main()
