"""Hardening: every bad request gets a 4xx and a JSON error that says what was wrong; the server lives on.

Also: limits (body, pixels, batch), the bearer token, CORS for named origins only, path traversal,
a store with broken models, metrics and logs, no torch, and schemathesis on the OpenAPI schema.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis.generation import GenerationMode

from convzoo.registry import Store
from convzoo.serving import create_app
from convzoo.serving.background import running

MAX_BODY = 256 * 1024
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def server(tiny_store):
    app = create_app(tiny_store, max_batch=4, batch_delay_ms=2, max_body_bytes=MAX_BODY, max_pixels=MAX_PIXELS)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def tensor(shape=(1, 1, 28, 28), datatype="FP32", name="image", value=0.5):
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": [value] * int(np.prod(shape))}


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its (empty) data never delivers: a decompression-bomb probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


GOOD_PNG = encoded(Image.new("L", (28, 28), 128), "PNG")
INFER = "/v2/models/tiny-fashion/infer"
BINARY_HEADER = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                        "parameters": {"binary_data_size": 3136}}]}).encode()

# (name, method, path, request kwargs, status, words the error must contain)
BAD_REQUESTS = [
    ("unknown model", "POST", "/v2/models/no-such-model/infer", {"json": {"inputs": [tensor()]}}, 404,
     ["no model named 'no-such-model'", "tiny-fashion"]),
    ("not a model name", "GET", "/v2/models/Tiny.Fashion", {}, 400, ["is not a model name"]),
    ("dot-dot name", "GET", "/v1/models/../onnx", {}, 404, ["no route"]),
    ("encoded traversal", "GET", "/v1/models/%2e%2e/onnx", {}, 400, ["is not a model name"]),
    ("encoded slash traversal", "GET", "/v1/models/..%2F..%2Fetc%2Fpasswd/onnx", {}, 404, ["no route"]),
    ("malformed JSON", "POST", INFER, {"content": b'{"inputs": [}'}, 400, ["malformed JSON", "line 1"]),
    ("JSON that is not an object", "POST", INFER, {"json": [1, 2]}, 400, ["expected a JSON object"]),
    ("no inputs", "POST", INFER, {"json": {"inputs": []}}, 400, ["inputs", "at least 1"]),
    ("inputs missing", "POST", INFER, {"json": {"id": "x"}}, 400, ["inputs", "required"]),
    ("unknown input", "POST", INFER, {"json": {"inputs": [tensor(name="img")]}}, 400,
     ["unknown input 'img'", "'image'"]),
    ("unknown datatype", "POST", INFER, {"json": {"inputs": [tensor(datatype="FP99")]}}, 400,
     ["unknown datatype 'FP99'", "FP32"]),
    ("wrong datatype", "POST", INFER, {"json": {"inputs": [tensor(datatype="INT64", value=1)]}}, 400,
     ["expected datatype FP32", "got INT64"]),
    ("wrong shape", "POST", INFER, {"json": {"inputs": [tensor(shape=(1, 28, 28))]}}, 400,
     ["expected shape [-1, 1, 28, 28], got [1, 28, 28]"]),
    ("wrong size", "POST", INFER, {"json": {"inputs": [tensor(shape=(1, 1, 32, 32))]}}, 400,
     ["expected shape [-1, 1, 28, 28], got [1, 1, 32, 32]"]),
    ("data too short", "POST", INFER, {"json": {"inputs": [{**tensor(), "data": [0.5] * 783}]}}, 400,
     ["needs 784 values, got 783"]),
    ("strings for FP32", "POST", INFER, {"json": {"inputs": [{**tensor(), "data": ["a"] * 784}]}}, 400,
     ["FP32 data must be numbers"]),
    ("ragged data", "POST", INFER, {"json": {"inputs": [{**tensor(shape=(1, 1, 2, 2)), "data": [[1, 2], [3]]}]}}, 400,
     ["expected shape"]),
    ("shape of strings", "POST", INFER, {"json": {"inputs": [{**tensor(), "shape": ["1", 1, 28, 28]}]}}, 400,
     ["inputs.0.shape.0", "integer"]),
    ("no data", "POST", INFER, {"json": {"inputs": [{k: v for k, v in tensor().items() if k != "data"}]}}, 400,
     ["has no data"]),
    ("batch over the limit", "POST", INFER, {"json": {"inputs": [tensor(shape=(5, 1, 28, 28))]}}, 400,
     ["batch of 5", "limit of 4"]),
    ("zero batch", "POST", INFER, {"json": {"inputs": [{**tensor(shape=(0, 1, 28, 28)), "data": []}]}}, 400,
     ["at least 1"]),
    ("unknown output", "POST", INFER, {"json": {"inputs": [tensor()], "outputs": [{"name": "probs"}]}}, 400,
     ["unknown output 'probs'", "'logits'"]),
    ("classification of a mask", "POST", "/v2/models/tiny-membranes/infer",
     {"json": {"inputs": [tensor((1, 1, 8, 8))], "outputs": [{"name": "mask_logits",
                                                               "parameters": {"classification": 2}}]}}, 400,
     ["classification needs an output of shape [-1, classes]"]),
    ("classification not a number", "POST", INFER,
     {"json": {"inputs": [tensor()], "outputs": [{"name": "logits", "parameters": {"classification": "3"}}]}}, 400,
     ["'classification' must be an integer"]),
    ("binary header longer than body", "POST", INFER,
     {"content": BINARY_HEADER, "headers": {"Inference-Header-Content-Length": "99999"}}, 400,
     ["Inference-Header-Content-Length is 99999", "body has"]),
    ("binary header not a number", "POST", INFER,
     {"content": BINARY_HEADER, "headers": {"Inference-Header-Content-Length": "abc"}}, 400,
     ["Inference-Header-Content-Length must be a count in the digits 0-9"]),
    ("binary data short", "POST", INFER,
     {"content": BINARY_HEADER + b"\0" * 3000, "headers": {"Inference-Header-Content-Length": str(len(BINARY_HEADER))}},
     400, ["binary_data_size 3136 runs past the 3000 bytes"]),
    ("binary size not matching shape", "POST", INFER,
     {"content": BINARY_HEADER.replace(b"3136", b"3000") + b"\0" * 3000,
      "headers": {"Inference-Header-Content-Length": str(len(BINARY_HEADER))}}, 400,
     ["needs 3136 bytes, but binary_data_size is 3000"]),
    ("extra binary bytes", "POST", INFER,
     {"content": BINARY_HEADER + b"\0" * 3200, "headers": {"Inference-Header-Content-Length": str(len(BINARY_HEADER))}},
     400, ["3200 bytes of binary data", "add up to 3136"]),
    ("binary without its header", "POST", INFER, {"content": BINARY_HEADER + b"\0" * 3136}, 400,
     ["Inference-Header-Content-Length"]),
    ("empty body", "POST", INFER, {"content": b""}, 400, ["the body is empty"]),
    ("unknown content encoding", "POST", INFER, {"content": b"x", "headers": {"Content-Encoding": "br"}}, 415,
     ["'br' is not supported"]),
    ("corrupt gzip", "POST", INFER, {"content": b"not gzip", "headers": {"Content-Encoding": "gzip"}}, 400,
     ["not valid gzip"]),
    ("gzip bomb", "POST", INFER, {"content": gzip.compress(b" " * (MAX_BODY * 4)), "headers": {"Content-Encoding": "gzip"}},
     413, ["inflates to more than"]),
    ("wrong model version", "POST", "/v2/models/tiny-fashion/versions/2/infer", {"json": {"inputs": [tensor()]}}, 404,
     ["one version, '1'"]),
    ("wrong method", "GET", INFER, {}, 405, ["GET is not allowed"]),
    ("unknown route", "GET", "/v3/anything", {}, 404, ["no route GET /v3/anything"]),
    ("body over the limit", "POST", INFER, {"content": b"0" * (MAX_BODY + 1)}, 413, ["limit of 262,144 bytes"]),
    ("chunked body over the limit", "POST", INFER, {"content": iter([b"0" * 65536] * 5)}, 413, ["limit of 262,144"]),
    ("image not an image", "POST", "/v1/models/tiny-fashion/predict",
     {"content": b"hello", "headers": {"Content-Type": "image/png"}}, 415, ["not an image of a kind this reads (PNG, JPEG or WebP)"]),
    ("GIF", "POST", "/v1/models/tiny-fashion/predict", {"content": encoded(Image.new("L", (8, 8)), "GIF")}, 415,
     ["PNG, JPEG or WebP"]),
    ("truncated PNG", "POST", "/v1/models/tiny-fashion/predict",
     {"content": encoded(Image.effect_noise((64, 64), 40), "PNG")[:300]}, 400, ["truncated or corrupt"]),
    ("pixel bomb", "POST", "/v1/models/tiny-fashion/predict", {"content": png_claiming(30000, 30000)}, 413,
     ["pixels"]),
    ("over the pixel limit", "POST", "/v1/models/tiny-fashion/predict", {"content": png_claiming(2000, 1000)}, 413,
     ["2000x1000 = 2,000,000 pixels", "limit of 1,000,000"]),
    ("text upload", "POST", "/v1/models/tiny-fashion/predict", {"content": b"x", "headers": {"Content-Type": "text/plain"}},
     415, ["'text/plain' is not an image upload"]),
    ("multipart without image", "POST", "/v1/models/tiny-fashion/predict", {"files": {"photo": ("a.png", GOOD_PNG)}},
     400, ["no file field 'image'", "photo"]),
    ("no image", "POST", "/v1/models/tiny-fashion/predict", {"content": b""}, 400, ["no image"]),
    ("k zero", "POST", "/v1/models/tiny-fashion/predict?k=0", {"content": GOOD_PNG}, 422, ["k", "greater than"]),
    ("png for a classifier", "POST", "/v1/models/tiny-fashion/predict?format=png", {"content": GOOD_PNG}, 400,
     ["classification answers JSON"]),
    ("unknown model download", "GET", "/v1/models/no-such-model/onnx", {}, 404, ["no model named"]),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_gets_4xx_with_a_json_error(http, case):
    _, method, path, kwargs, status, words = case
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    for word in words:
        assert word in error, f"{word!r} not in {error!r}"


def test_server_serves_on_after_every_bad_request(http):
    for _, method, path, kwargs, _, _ in BAD_REQUESTS:
        if isinstance(kwargs.get("content"), type(iter([]))):
            continue  # a used-up iterator
        http.request(method, path, **kwargs)
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200
    response = http.post(INFER, json={"inputs": [tensor()]})
    assert response.status_code == 200 and len(response.json()["outputs"][0]["data"]) == 10


def test_gzip_request_is_accepted(http):
    body = gzip.compress(json.dumps({"inputs": [tensor()]}).encode())
    response = http.post(INFER, content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    plain = http.post(INFER, json={"inputs": [tensor()]}).json()
    assert response.json()["outputs"] == plain["outputs"]


def test_traversal_never_reads_outside_the_store(http):
    for path in ("/v1/models/..%2F..%2F..%2Fetc%2Fpasswd/onnx", "/v1/models/%2e%2e%2f%2e%2e/onnx",
                 "/v1/models/.hidden/onnx", "/v1/models/%252e%252e/onnx", "/v2/models/../../etc/passwd/ready"):
        response = http.get(path)
        assert 400 <= response.status_code < 500
        assert "root:" not in response.text


# ------------------------------------------------------------------------------------------------
# the token and CORS


def test_bearer_token_guards_everything_but_health(tiny_store):
    app = create_app(tiny_store, token="s3cret", batch_delay_ms=0)
    with running(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
        for path in ("/v2", "/v2/models/tiny-fashion", "/v1/models", "/metrics", "/openapi.json"):
            missing = http.get(path)
            assert missing.status_code == 401 and "bearer token" in missing.json()["error"]
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = http.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
            assert http.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        refused = http.post(INFER, json={"inputs": [tensor()]})
        assert refused.status_code == 401


def test_cors_only_for_named_origins(tiny_store, http):
    app = create_app(tiny_store, cors_origins=["https://ok.example"], batch_delay_ms=0)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with running(app) as url, httpx.Client(base_url=url) as c:
        ok = c.options(INFER, headers={"Origin": "https://ok.example", **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ok.example"
        evil = c.options(INFER, headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in evil.headers
        simple = c.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
        assert c.get("/v1/models", headers={"Origin": "https://ok.example"}).headers[
            "access-control-allow-origin"] == "https://ok.example"
    # no origins named: no CORS headers at all
    plain = http.get("/v1/models", headers={"Origin": "https://ok.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_cors_origins_from_the_environment(tiny_store, monkeypatch):
    monkeypatch.setenv("CONVZOO_CORS_ORIGINS", "https://a.example, https://b.example")
    app = create_app(tiny_store, batch_delay_ms=0)
    with running(app) as url, httpx.Client(base_url=url) as c:
        response = c.get("/v2", headers={"Origin": "https://b.example"})
        assert response.headers["access-control-allow-origin"] == "https://b.example"


# ------------------------------------------------------------------------------------------------
# broken models


@pytest.fixture
def broken_store(tiny_store, tmp_path) -> Store:
    """tiny-cifar: changed after export (sha256); tiny-style: file missing; tiny-membranes: not an ONNX graph;
    tiny-garbled: a manifest that is not JSON."""
    root = tmp_path / "store"
    shutil.copytree(tiny_store.roots[0], root)
    shutil.copytree(root / "tiny-fashion", root / "tiny-garbled")
    (root / "tiny-garbled" / "model.json").write_text("{not json")
    for name in ("tiny-list", "tiny-types", "tiny-nomanifest", "tiny-dir"):
        shutil.copytree(root / "tiny-fashion", root / name)
        renamed = json.loads((root / name / "model.json").read_text()) | {"name": name}
        (root / name / "model.json").write_text(json.dumps(renamed))
    (root / "tiny-list" / "model.json").write_text("[]")
    typed = json.loads((root / "tiny-types" / "model.json").read_text()) | {"sha256": 123}
    (root / "tiny-types" / "model.json").write_text(json.dumps(typed))
    (root / "tiny-nomanifest" / "model.json").unlink()
    (root / "tiny-dir" / "model.onnx").unlink()
    (root / "tiny-dir" / "model.onnx").mkdir()
    with open(root / "tiny-cifar" / "model.onnx", "ab") as f:
        f.write(b"tampered")
    (root / "tiny-style" / "model.onnx").unlink()
    garbage = root / "tiny-membranes" / "model.onnx"
    garbage.write_bytes(b"this is not onnx")
    manifest = json.loads((root / "tiny-membranes" / "model.json").read_text())
    manifest["sha256"] = __import__("hashlib").sha256(garbage.read_bytes()).hexdigest()
    (root / "tiny-membranes" / "model.json").write_text(json.dumps(manifest))
    return Store(root)


def test_broken_models_are_not_ready_with_the_reason_while_others_serve(broken_store):
    app = create_app(broken_store, batch_delay_ms=0)
    with running(app, ready=False) as url, httpx.Client(base_url=url) as http:
        app.state.pool.loaded.wait(30)
        ready = http.get("/v2/health/ready")
        assert ready.status_code == 400
        assert set(ready.json()["models"]) == {"tiny-cifar", "tiny-style", "tiny-membranes", "tiny-garbled",
                                               "tiny-list", "tiny-types", "tiny-nomanifest", "tiny-dir"}
        assert "not valid JSON" in http.get("/v2/models/tiny-garbled/ready").json()["error"]
        why = {name: http.get(f"/v1/models/{name}").json() for name in ("tiny-list", "tiny-types", "tiny-nomanifest",
                                                                         "tiny-dir")}
        assert all(not item["ready"] for item in why.values())
        assert "must be a JSON object" in why["tiny-list"]["reason"]
        assert "sha256" in why["tiny-types"]["reason"]
        assert "has no model.json" in why["tiny-nomanifest"]["reason"]
        assert "not a regular file" in why["tiny-dir"]["reason"]
        assert http.get("/v1/models/tiny-dir/onnx").status_code == 503
        reasons = {name: http.get(f"/v2/models/{name}/ready") for name in ("tiny-cifar", "tiny-style", "tiny-membranes")}
        assert all(r.status_code == 400 for r in reasons.values())
        assert "sha256" in reasons["tiny-cifar"].json()["error"] and "export or download it again" in reasons[
            "tiny-cifar"].json()["error"]
        assert "missing" in reasons["tiny-style"].json()["error"]
        assert "not a model onnxruntime can load" in reasons["tiny-membranes"].json()["error"]
        refused = http.post("/v2/models/tiny-cifar/infer", json={"inputs": [tensor((1, 3, 32, 32))]})
        assert refused.status_code == 503 and "sha256" in refused.json()["error"]
        assert http.get("/v1/models/tiny-cifar/onnx").status_code == 503  # never hand out a tampered file
        catalogue = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert catalogue["tiny-fashion"]["ready"] and not catalogue["tiny-cifar"]["ready"]
        assert "sha256" in catalogue["tiny-cifar"]["reason"]
        assert http.get("/v2/models/tiny-fashion/ready").status_code == 200
        served = http.post(INFER, json={"inputs": [tensor()]})
        assert served.status_code == 200
        assert 'convzoo_model_ready{model="tiny-cifar"} 0.0' in http.get("/metrics").text
        assert 'convzoo_model_ready{model="tiny-fashion"} 1.0' in http.get("/metrics").text


def test_serving_only_the_named_models(tiny_store, broken_store):
    app = create_app(broken_store, models=["tiny-fashion"], batch_delay_ms=0)
    with running(app) as url:  # ready: the broken ones are not asked for
        assert httpx.get(f"{url}/v2/models/tiny-cifar/ready").status_code == 404
    app = create_app(broken_store, models=["tiny-fashion", "tiny-garbled"], batch_delay_ms=0)
    with running(app, ready=False) as url:  # named but broken: reported, not fatal
        app.state.pool.loaded.wait(30)
        assert httpx.get(f"{url}/v2/models/tiny-garbled/ready").status_code == 400
        assert httpx.get(f"{url}/v2/models/tiny-fashion/ready").status_code == 200


def test_unknown_named_model_is_refused_at_start(tiny_store):
    from convzoo.errors import ConvzooError

    with pytest.raises(ConvzooError, match="not in the store"):
        create_app(tiny_store, models=["lenet5-fashion"])
    with pytest.raises(ConvzooError, match="is not a model name"):
        create_app(tiny_store, models=["../etc"])


# ------------------------------------------------------------------------------------------------
# metrics, logs, no torch


def test_metrics_and_one_log_line_per_request(http, caplog):
    def request_lines() -> list[dict]:
        return [line for line in (json.loads(r.getMessage()) for r in caplog.records
                                  if r.getMessage().startswith("{")) if line["event"] == "request"]

    with caplog.at_level(logging.INFO, logger="convzoo.serving"):
        http.post(INFER, json={"inputs": [tensor()]}, headers={"X-Request-ID": "trace-42"})
        http.post(INFER, json={"inputs": [tensor(shape=(1, 28, 28))]}, headers={"X-Request-ID": "trace-43"})
        deadline = time.monotonic() + 5  # the server writes a request's line after its answer has gone out
        while {"trace-42", "trace-43"} - {line["id"] for line in request_lines()} and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = request_lines()
    ok = next(line for line in lines if line["id"] == "trace-42")
    assert ok["route"] == "/v2/models/{name}/infer" and ok["model"] == "tiny-fashion" and ok["status"] == 200
    assert ok["ms"] > 0 and ok["bytes_in"] > 0
    assert any(line["status"] == 400 for line in lines)
    text = http.get("/metrics").text
    assert 'convzoo_requests_total{model="tiny-fashion",route="/v2/models/{name}/infer",status="200"}' in text
    assert 'convzoo_requests_total{model="tiny-fashion",route="/v2/models/{name}/infer",status="400"}' in text
    for name in ("convzoo_request_seconds_bucket", "convzoo_queue_seconds_bucket", "convzoo_batch_size_bucket",
                 "convzoo_inference_seconds_bucket", "convzoo_requests_in_flight"):
        assert name in text
    assert 'model="no-such-model"' not in text  # clients cannot invent label values


def test_the_infer_lane_answers_as_the_router_would(http, monkeypatch, caplog):
    """Infer requests skip FastAPI's routing (kserve.InferLane); they are still labelled by route template,
    a fault in the handler is still a logged 500 in JSON, and other methods still get the router's 405."""
    versioned = INFER.replace("/infer", "/versions/1/infer")
    assert http.post(versioned, json={"inputs": [tensor()]}).status_code == 200
    assert http.post(INFER.replace("/infer", "/versions/2/infer"), json={"inputs": [tensor()]}).status_code == 404
    text = http.get("/metrics").text
    assert 'route="/v2/models/{name}/versions/{version}/infer",status="200"' in text
    assert 'route="/v2/models/{name}/versions/{version}/infer",status="404"' in text
    response = http.get(INFER)
    assert response.status_code == 405 and "GET is not allowed" in response.json()["error"]

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("convzoo.serving.kserve._decode", broken)
    with caplog.at_level(logging.ERROR, logger="convzoo.serving"):
        response = http.post(INFER, json={"inputs": [tensor()]})
    assert response.status_code == 500 and response.json() == {
        "error": "internal error (RuntimeError); the server log has the details"}
    assert any("unhandled error on POST /v2/models/tiny-fashion/infer" in r.getMessage() and r.exc_info
               for r in caplog.records)
    monkeypatch.undo()
    assert http.post(INFER, json={"inputs": [tensor()]}).status_code == 200


def test_request_id_is_echoed(http):
    assert http.get("/v2", headers={"X-Request-ID": "abc"}).headers["x-request-id"] == "abc"
    assert len(http.get("/v2").headers["x-request-id"]) == 32


def test_serving_imports_and_serves_without_torch(tiny_store):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from convzoo.registry import Store\n"
            "from convzoo.serving import create_app\n"
            "from convzoo.serving.background import running\n"
            "import urllib.request\n"
            f"with running(create_app(Store({str(tiny_store.roots[0])!r}))) as url:\n"
            "    print(urllib.request.urlopen(url + '/v2/models/tiny-fashion').status)\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "200"


# ------------------------------------------------------------------------------------------------
# schemathesis: examples generated from the service's own OpenAPI schema never get a 5xx


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_examples_never_get_a_server_error(server, mode):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(base_url=server)
            statuses.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
            if response.status_code >= 400:
                assert "error" in response.json()

        try:
            check()
        except Unsatisfiable:  # negative mode on a route without parameters: nothing to get wrong
            assert mode == GenerationMode.NEGATIVE
    assert len(statuses) >= (14 if mode == GenerationMode.POSITIVE else 8)
    if mode == GenerationMode.POSITIVE:  # the enum of served names lets valid requests reach the models
        assert 200 in statuses["GET /v2/models/{name}"]
