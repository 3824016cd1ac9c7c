"""The service against a hostile but fair client: every request it can be sent gets a 4xx JSON error that
says what was wrong (or a right answer), never a 5xx, and the server serves on.

A corpus of hand-made requests (one per class of attack the service has met) and hypothesis-made
ones; the tests count what they sent and what came back. Memory, liveness and stalled-connection
figures are measured by ``benchmarks/hostile.py``; these tests check the behaviour.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import io
import json
import socket
import struct
import time
import zlib

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from rawhttp import exchange

from convzoo.runtime import load_model, run_tiled
from convzoo.serving import create_app
from convzoo.serving.background import running
from convzoo.serving.limits import Limits
from convzoo.serving.memory import MemoryBudget
from convzoo.serving.tensors import ProtocolError

LIMITS = Limits(max_body=1 << 20, max_json=256 * 1024, max_json_values=20_000, max_pixels=512 * 512, tile=64,
                memory_budget=256 << 20, memory_wait_s=2.0, header_timeout_s=1.0, body_timeout_s=1.0,
                max_connections=400)
SEEN: collections.Counter = collections.Counter()  # status classes of every hostile request sent


@pytest.fixture(scope="module")
def server(tiny_store):
    app = create_app(tiny_store, max_batch=4, batch_delay_ms=2, limits=LIMITS, token=None)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


def answered_sensibly(response: httpx.Response) -> None:
    SEEN["5xx" if response.status_code >= 500 else f"{response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.status_code != 304:
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]
        message = response.json()["error"]
        assert isinstance(message, str) and len(message.split()) >= 3, message


def png(image: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **params)
    return out.getvalue()


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def png_with_ztxt(size: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * size, zip=True)
    return png(Image.new("L", (28, 28)), pnginfo=info)


def png_with_iccp(size: int) -> bytes:
    data = png(Image.new("L", (28, 28)))
    profile = zlib.compress(b"\0" * size)
    body = b"icc\0\0" + profile
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


def tensor(shape, datatype="FP32", data=None, name="image"):
    n = int(np.prod(shape)) if data is None else None
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": data if data is not None else [0.5] * n}


def gzip_bomb(inflated: int) -> bytes:
    return gzip.compress(b'{"inputs": [' + b" " * inflated + b"]}", 9)


INFER = "/v2/models/tiny-fashion/infer"
SEG_INFER = "/v2/models/tiny-membranes/infer"
STYLE_INFER = "/v2/models/tiny-style/infer"
GOOD = png(Image.new("L", (28, 28), 128))

# (name, method, path, request kwargs, expected status)
CORPUS = [
    ("gzip bomb to a classifier", "POST", INFER, {"content": gzip_bomb(50 << 20),
                                                  "headers": {"Content-Encoding": "gzip"}}, 413),
    ("deflate bomb", "POST", INFER, {"content": zlib.compress(b"[" + b"0," * (10 << 20) + b"0]", 9),
                                     "headers": {"Content-Encoding": "deflate"}}, 413),
    ("gzip that is not gzip", "POST", INFER, {"content": b"not gzip", "headers": {"Content-Encoding": "gzip"}}, 400),
    ("unknown encoding", "POST", INFER, {"content": b"{}", "headers": {"Content-Encoding": "br"}}, 415),
    ("stacked encodings", "POST", INFER, {"content": b"{}", "headers": {"Content-Encoding": "gzip, gzip"}}, 415),
    ("int64-overflowing shape", "POST", SEG_INFER, {"json": {"inputs": [
        {"name": "image", "shape": [1, 1, 16777232, 1099510579201], "datatype": "FP32", "data": [0]}]}}, 413),
    ("shape of 2**63", "POST", INFER, {"json": {"inputs": [
        {"name": "image", "shape": [2**63, 1, 28, 28], "datatype": "FP32", "data": [0]}]}}, 413),
    ("negative shape", "POST", INFER, {"json": {"inputs": [tensor([-1, 1, 28, 28], data=[0])]}}, 400),
    ("tiny request declaring a huge segmentation input", "POST", SEG_INFER, {"json": {"inputs": [
        {"name": "image", "shape": [1, 1, 4096, 4096], "datatype": "UINT8", "data": [0]}]}}, 413),
    ("huge batch", "POST", INFER, {"json": {"inputs": [tensor([10**6, 1, 28, 28], data=[0])]}}, 400),
    ("FP16 out of range", "POST", INFER, {"json": {"inputs": [tensor([1, 1, 28, 28], "FP16", [1e10] * 784)]}}, 400),
    ("true as FP32", "POST", INFER, {"json": {"inputs": [tensor([1, 1, 28, 28], "FP32", [True] + [0.5] * 783)]}},
     400),
    ("false among integers", "POST", INFER, {"json": {"inputs": [
        tensor([1, 1, 28, 28], "UINT8", [False] + [1] * 783)]}}, 400),
    ("BYTES for a float input", "POST", INFER, {"json": {"inputs": [tensor([1, 1, 28, 28], "BYTES", ["a"] * 784)]}},
     400),
    ("BYTES binary with a lying length", "POST", INFER, {
        "content": json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                           "parameters": {"binary_data_size": 8}}]}).encode() + b"\xff\xff\xff\x7fabcd",
        "headers": {"Inference-Header-Content-Length": str(len(json.dumps({"inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]})))}}, 400),
    ("duplicate keys", "POST", INFER, {"content": b'{"inputs": [], "inputs": [{"name": "image"}]}',
                                       "headers": {"Content-Type": "application/json"}}, 400),
    ("duplicate key inside a tensor", "POST", INFER, {
        "content": b'{"inputs": [{"name": "image", "name": "x", "shape": [1,1,28,28], "datatype": "FP32", '
                   b'"data": [0]}]}'}, 400),
    ("too many JSON values", "POST", "/v2/models/tiny-style/infer", {"content": json.dumps(
        {"inputs": [tensor([1, 3, 128, 128], "UINT8", [0] * (3 * 128 * 128))]}).encode()}, 413),
    ("JSON part over the limit", "POST", INFER, {"content": b'{"id": "' + b"x" * (300 * 1024) + b'"}'}, 413),
    ("header length not a number", "POST", INFER, {"content": b"{}", "headers": {
        "Inference-Header-Content-Length": "1e3"}}, 400),
    ("header length huge", "POST", INFER, {"content": b"{}", "headers": {
        "Inference-Header-Content-Length": "99999999999999999999"}}, 413),
    ("NaN-heavy nesting", "POST", INFER, {"content": b"[" * 100_000 + b"]" * 100_000}, 400),
    ("style input of 1 pixel", "POST", STYLE_INFER, {"json": {"inputs": [tensor([1, 3, 1, 1])]}}, 400),
    ("style input of 2 pixels", "POST", STYLE_INFER, {"json": {"inputs": [tensor([1, 3, 2, 40])]}}, 400),
    ("zTXt chunk over 1 MB", "POST", "/v1/models/tiny-fashion/predict", {
        "content": png_with_ztxt(4 << 20), "headers": {"Content-Type": "image/png"}}, 413),
    ("iCCP chunk over 1 MB", "POST", "/v1/models/tiny-fashion/predict", {
        "content": png_with_iccp(4 << 20), "headers": {"Content-Type": "image/png"}}, None),
    ("truncated JPEG", "POST", "/v1/models/tiny-fashion/predict", {
        "content": jpeg(Image.new("RGB", (64, 64), (200, 10, 10)))[:300], "headers": {"Content-Type": "image/jpeg"}},
     400),
    ("JPEG header only", "POST", "/v1/models/tiny-fashion/predict", {"content": b"\xff\xd8\xff\xe0\x00\x10JFIF",
                                                                     "headers": {"Content-Type": "image/jpeg"}}, None),
    ("truncated PNG", "POST", "/v1/models/tiny-fashion/predict", {"content": GOOD[:60]}, None),
    ("1x1 image to a style net", "POST", "/v1/models/tiny-style/predict", {"content": png(Image.new("RGB", (1, 1)))},
     400),
    ("1x40 image to a style net", "POST", "/v1/models/tiny-style/predict", {
        "content": png(Image.new("RGB", (1, 40)))}, 400),
    ("style size above the ceiling", "POST", "/v1/models/tiny-style/predict?max_side=100000", {"content": GOOD}, 400),
    ("image over the pixel limit", "POST", "/v1/models/tiny-fashion/predict", {
        "content": png(Image.new("1", (2000, 2000)))}, 413),
    ("16-bit PNG", "POST", "/v1/models/tiny-fashion/predict", {"content": png(Image.new("I;16", (28, 28)))}, None),
    ("CMYK JPEG", "POST", "/v1/models/tiny-fashion/predict", {"content": jpeg(Image.new("CMYK", (28, 28)))}, None),
    ("multipart without the field", "POST", "/v1/models/tiny-fashion/predict", {"files": {"other": ("a", b"x")}},
     400),
    ("multipart garbage", "POST", "/v1/models/tiny-fashion/predict", {
        "content": b"--x\r\nfoo", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, 400),
    ("range reversed", "GET", "/v1/models/tiny-fashion/onnx", {"headers": {"Range": "bytes=1000-10"}}, 400),
    ("range in items", "GET", "/v1/models/tiny-fashion/onnx", {"headers": {"Range": "items=0-1"}}, 400),
    ("range not numbers", "GET", "/v1/models/tiny-fashion/onnx", {"headers": {"Range": "bytes=abc"}}, 400),
    ("range past the end", "GET", "/v1/models/tiny-fashion/onnx", {"headers": {"Range": "bytes=99999999-"}}, 416),
    ("empty suffix range", "GET", "/v1/models/tiny-fashion/onnx", {"headers": {"Range": "bytes=-0"}}, 416),
    ("no route", "GET", "/v3/anything", {}, 404),
    ("wrong method", "DELETE", INFER, {}, 405),
    ("body too large", "POST", INFER, {"content": b"0" * (2 << 20)}, 413),
    ("conflicting Content-Encoding", "POST", INFER, {"content": b"{}", "headers": [
        ("Content-Encoding", "gzip"), ("Content-Encoding", "identity")]}, 400),
    ("conflicting header lengths", "POST", INFER, {"content": b"{}", "headers": [
        ("Inference-Header-Content-Length", "1"), ("Inference-Header-Content-Length", "2")]}, 400),
    ("conflicting Range", "GET", "/v1/models/tiny-fashion/onnx", {"headers": [
        ("Range", "bytes=0-1"), ("Range", "bytes=2-3")]}, 400),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case[0] for case in CORPUS])
def test_hand_made_hostile_request_gets_a_4xx_json_error(http, case):
    _, method, path, kwargs, status = case
    response = http.request(method, path, **kwargs)
    answered_sensibly(response)
    if status is not None:
        assert response.status_code == status, response.text[:300]
    else:
        assert response.status_code in (200, 400, 413, 415), response.text[:300]
    if status == 416:
        assert response.headers["content-range"].startswith("bytes */")


def test_a_range_the_file_has_is_served(http):
    whole = http.get("/v1/models/tiny-fashion/onnx").content
    part = http.get("/v1/models/tiny-fashion/onnx", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole[:10]


SHAPES = st.lists(st.integers(-2, 2**64), min_size=0, max_size=6)
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans(),
                   st.text(max_size=5), st.none())
DATATYPES = st.sampled_from(["FP32", "FP16", "FP64", "UINT8", "INT8", "INT64", "BOOL", "BYTES", "fp32", "COMPLEX"])
HOSTILE = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@HOSTILE
@given(shape=SHAPES, datatype=DATATYPES, data=st.lists(VALUES, max_size=20),
       model=st.sampled_from(["tiny-fashion", "tiny-membranes", "tiny-style", "tiny-cifar"]),
       name=st.sampled_from(["image", "input", ""]), binary=st.booleans())
def test_generated_tensors_never_get_a_5xx(http, shape, datatype, data, model, name, binary):
    request = {"inputs": [{"name": name, "shape": shape, "datatype": datatype}]}
    if binary:
        raw = np.asarray([v for v in data if isinstance(v, float)] or [0.0], np.float32).tobytes()
        request["inputs"][0]["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps(request).encode()
        response = http.post(f"/v2/models/{model}/infer", content=header + raw,
                             headers={"Inference-Header-Content-Length": str(len(header))})
    else:
        request["inputs"][0]["data"] = data
        response = http.post(f"/v2/models/{model}/infer", content=json.dumps(request).encode())
    answered_sensibly(response)


@HOSTILE
@given(body=st.binary(max_size=2000), encoding=st.sampled_from([None, "gzip", "deflate", "identity", "x"]),
       header_length=st.one_of(st.none(), st.text(max_size=6), st.integers(-5, 3000).map(str)),
       path=st.sampled_from([INFER, SEG_INFER, "/v1/models/tiny-fashion/predict", "/v1/models/tiny-style/predict",
                             "/v1/models/tiny-membranes/predict?format=json"]))
def test_generated_bodies_never_get_a_5xx(http, body, encoding, header_length, path):
    headers = {}
    if encoding:
        headers["Content-Encoding"] = encoding
        if encoding == "gzip" and body[:1] == b"\x00":
            body = gzip.compress(body)
    if header_length is not None and header_length.isascii() and header_length.isprintable():
        headers["Inference-Header-Content-Length"] = header_length
    answered_sensibly(http.post(path, content=body, headers=headers))


@HOSTILE
@given(image=st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I",
                                                                                 "LA", "I;16"])),
       fmt=st.sampled_from(["PNG", "JPEG", "WEBP"]), cut=st.integers(0, 400),
       model=st.sampled_from(["tiny-fashion", "tiny-cifar", "tiny-membranes", "tiny-style"]))
def test_generated_images_never_get_a_5xx(http, image, fmt, cut, model):
    width, height, mode = image
    picture = Image.new(mode, (width, height))
    try:
        out = io.BytesIO()
        picture.save(out, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode this format cannot hold
        return
    data = out.getvalue()
    data = data[:len(data) - cut] if cut < len(data) else data[:10]
    answered_sensibly(http.post(f"/v1/models/{model}/predict", content=data))


@HOSTILE
@given(value=st.text(max_size=30))
def test_generated_range_headers_never_get_a_5xx(http, value):
    if not (value.isascii() and value.isprintable()) or value != value.strip():
        return  # what an HTTP client cannot send: h11 refuses it before the request leaves
    answered_sensibly(http.get("/v1/models/tiny-fashion/onnx", headers={"Range": value}))


def test_the_corpus_was_big_and_the_server_lives_on(http):
    """Runs after the corpus (file order): at least 300 hostile requests, no 5xx, the server still answers."""
    total = sum(SEEN.values())
    print(f"\nhostile requests sent: {total}; answers by class: {dict(SEEN)}")
    assert total >= 300, SEEN
    assert SEEN["5xx"] == 0
    assert http.get("/v2/health/live").status_code == 200
    assert http.post("/v1/models/tiny-fashion/predict", content=GOOD).status_code == 200


# ----------------------------------------------------------------------------------------------
# the HTTP layer: what uvicorn would answer itself, CORS, stalled and crowding clients


def raw_exchange(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    return exchange(url, data, timeout)


@pytest.mark.parametrize("raw", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /v2/models/tiny-fashion/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"POST /v2/models/tiny-fashion/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}",
], ids=["garbage", "two content lengths", "bad chunk", "nul in path", "content length not a number"])
def test_unparseable_http_gets_a_json_400(server, raw):
    answer = raw_exchange(server, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"application/json" in head.lower()
    assert "error" in json.loads(body)


def test_refused_cors_preflight_is_json(tiny_store):
    app = create_app(tiny_store, cors_origins=["https://ok.example"], limits=LIMITS)
    with running(app) as url, httpx.Client(base_url=url) as client:
        refused = client.options(INFER, headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400
        assert "CORS" in refused.json()["error"]
        allowed = client.options(INFER, headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "POST"})
        assert allowed.status_code == 200


def test_readiness_says_nothing_about_the_store_when_a_token_guards_it(tmp_path, tiny_store):
    import shutil

    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    (root / "tiny-cifar" / "model.onnx").write_bytes(b"broken")
    from convzoo.registry import Store

    app = create_app(Store(root), token="s3cret", limits=LIMITS, load_in_background=False)
    with running(app, ready=False) as url:
        response = httpx.get(f"{url}/v2/health/ready")
        assert response.status_code == 400
        assert str(root) not in response.text and "sha256" not in response.text
        assert response.json()["models"] == {"tiny-cifar": "failed"}
        detail = httpx.get(f"{url}/v2/models/tiny-cifar/ready", headers={"Authorization": "Bearer s3cret"})
        assert "sha256" in detail.json()["error"]


def test_stalled_connections_are_cut_off_and_others_are_served(server):
    """200 clients stall (half a header, or headers and half a body); all are cut off within the timeouts
    while a new client is served at once."""
    host, port = server.removeprefix("http://").split(":")
    stalled = []
    for i in range(200):
        sock = socket.create_connection((host, int(port)), timeout=10)
        if i % 2:
            sock.sendall(b"POST /v2/models/tiny-fashion/infer HTTP/1.1\r\nHost: x\r\n")  # no end of headers
        else:
            sock.sendall(b"POST /v2/models/tiny-fashion/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
        stalled.append(sock)
    start = time.monotonic()
    live = httpx.get(f"{server}/v2/health/live", timeout=5)
    assert live.status_code == 200 and time.monotonic() - start < 1.0
    closed, statuses = 0, collections.Counter()
    deadline = start + LIMITS.header_timeout_s + LIMITS.body_timeout_s + 5
    for sock in stalled:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
            closed += 1
            statuses[data.split(b" ", 2)[1].decode() if data else "closed"] += 1
        except OSError:
            pass
        sock.close()
    cut_after = time.monotonic() - start
    print(f"\n200 stalled connections: {closed} cut off within {cut_after:.1f} s; answers {dict(statuses)}")
    assert closed == 200, statuses
    assert set(statuses) <= {"408", "closed"}
    assert httpx.get(f"{server}/v2/health/live").status_code == 200


def test_beyond_the_cap_probes_are_answered_and_the_rest_told_to_retry(tiny_store):
    """20 idle connections fill the cap: a liveness probe is still answered (a probe slot); an inference
    request in a probe slot gets a JSON 503 with Retry-After; past the probe slots too, a JSON 503 at once."""
    limits = Limits(max_connections=20, probe_slots=2, header_timeout_s=30.0)
    app = create_app(tiny_store, limits=limits)
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(20)]
        time.sleep(0.2)
        live = raw_exchange(url, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert live.startswith(b"HTTP/1.1 200") and b'"live"' in live
        other = raw_exchange(url, b"GET /v2/models/tiny-fashion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert other.startswith(b"HTTP/1.1 503") and b'"error"' in other and b"retry-after: 1" in other.lower()
        probes_taken = [socket.create_connection((host, int(port))) for _ in range(2)]
        time.sleep(0.2)
        full = raw_exchange(url, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert full.startswith(b"HTTP/1.1 503") and b"retry-after" in full.lower()
        for sock in idle + probes_taken:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{url}/v2/models/tiny-fashion").status_code == 200


# ----------------------------------------------------------------------------------------------
# memory: the budget, tiling, the style ceiling


def test_large_segmentation_inputs_run_tiled_with_the_runtime_tiling(http, tiny_store):
    x = np.random.default_rng(0).random((1, 1, 200, 200), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 200, 200], "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    response = http.post(SEG_INFER, content=header + x.tobytes(),
                         headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text[:300]
    json_length = int(response.headers["inference-header-content-length"])
    meta = json.loads(response.content[:json_length])
    out = np.frombuffer(response.content[json_length:], np.float32).reshape(meta["outputs"][0]["shape"])
    expected = run_tiled(load_model("tiny-membranes", tiny_store), x[0], tile=LIMITS.tile, batch=1)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_a_request_larger_than_the_whole_budget_is_refused_before_it_runs(tiny_store):
    limits = Limits(memory_budget=2 << 20, max_pixels=1024 * 1024, tile=512)
    app = create_app(tiny_store, limits=limits)
    with running(app) as url:
        x = np.zeros((1, 3, 512, 512), np.uint8)
        header = json.dumps({"inputs": [{"name": "image", "shape": list(x.shape), "datatype": "UINT8",
                                         "parameters": {"binary_data_size": x.nbytes}}]}).encode()
        response = httpx.post(f"{url}{STYLE_INFER}", content=header + x.tobytes(),
                              headers={"Inference-Header-Content-Length": str(len(header))})
        assert response.status_code == 413
        assert "memory" in response.json()["error"]
        assert app.state.budget.used == 0  # everything reserved was given back


def test_budget_waits_for_memory_then_refuses_with_503():
    async def scenario():
        budget = MemoryBudget(100, wait_s=0.2)
        first, second, third = budget.reservation(), budget.reservation(), budget.reservation()
        await first.grow(80, "first")
        with pytest.raises(ProtocolError) as busy:
            await second.grow(30, "second")
        assert busy.value.status == 503
        with pytest.raises(ProtocolError) as never:
            await third.grow(101, "third")
        assert never.value.status == 413
        waiting = asyncio.create_task(second.grow(30, "second"))
        await asyncio.sleep(0.05)
        first.release()
        await waiting
        assert budget.used == 30
        second.release()
        assert budget.used == 0
    asyncio.run(scenario())


def test_each_model_measures_its_run_memory_at_load(tiny_store):
    from convzoo.serving.memory import measure_peak
    from convzoo.serving.pool import FALLBACK_BYTES_PER_VALUE

    if measure_peak(lambda: None) is None:
        pytest.skip("this kernel does not let a process reset its peak memory (clear_refs)")
    block = []
    grown = measure_peak(lambda: block.append(np.ones(50 << 20, np.uint8)))
    assert grown >= 45 << 20, grown
    app = create_app(tiny_store, limits=LIMITS)
    with running(app):
        measured = {served.name: served.bytes_per_value for served in app.state.pool}
    assert all(0 < value != FALLBACK_BYTES_PER_VALUE for value in measured.values()), measured
