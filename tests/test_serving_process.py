"""`convzoo serve` as a real process on a free port: tritonclient end to end, the token from the
environment, structured logs, and a graceful SIGTERM that finishes the request in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from conftest import free_port
from tritonclient.utils import InferenceServerException

from convzoo.serving.background import wait_ready

pytestmark = pytest.mark.slow  # starts `convzoo serve` subprocesses

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "process-test-token"


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}  # a fresh dict each call: tritonclient adds its own headers to it


def start(store_root: Path, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CONVZOO_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")  # a file, not a pipe: a chatty server can never block on a full pipe
    return subprocess.Popen([sys.executable, "-m", "convzoo.cli", "serve", "--store", str(store_root),
                             "--host", "127.0.0.1", "--port", str(port), *extra],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


@pytest.fixture
def served(tiny_store, tmp_path):
    port, log_path = free_port(), tmp_path / "serve.log"
    process = start(tiny_store.roots[0], port, log_path, "--max-batch", "8", "--batch-delay-ms", "5")
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        yield process, port, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_convzoo_serve_end_to_end_with_tritonclient(served, tiny_store):
    process, port, log_path = served
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=30)
    try:
        assert client.is_server_ready()  # health needs no token
        with pytest.raises(InferenceServerException, match="bearer token"):
            client.get_server_metadata()
        assert "classification" in client.get_server_metadata(headers=auth())["extensions"]
        meta = client.get_model_metadata("tiny-fashion", headers=auth())
        assert meta["inputs"][0]["shape"] == [-1, 1, 28, 28]

        x = np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32)
        session = ort.InferenceSession(str(tiny_store.get("tiny-fashion").onnx_path), providers=["CPUExecutionProvider"])
        expected = session.run(None, {"image": x})[0]
        for binary in (True, False):
            tensor = httpclient.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            outputs = [httpclient.InferRequestedOutput("logits", binary_data=binary)]
            result = client.infer("tiny-fashion", [tensor], outputs=outputs, headers=auth(), request_id=f"b{binary}")
            np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-5)
        top = client.infer("tiny-fashion", [tensor], headers=auth(),
                           outputs=[httpclient.InferRequestedOutput("logits", class_count=2)]).as_numpy("logits")
        assert [int(item.split(b":")[1]) for item in top[0]] == list(np.argsort(-expected[0])[:2])
    finally:
        client.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
    lines = log_lines(log_path)
    assert lines[0]["event"] == "start" and lines[0]["auth"] is True and len(lines[0]["models"]) == 4
    requests = [line for line in lines if line["event"] == "request"]
    assert any(line["id"] and line["status"] == 200 and line["route"] == "/v2/models/{name}/infer" for line in requests)
    assert any(line["status"] == 401 for line in requests)
    assert TOKEN not in log_path.read_text()  # the token never lands in the log


def test_sigterm_finishes_the_request_in_flight(served):
    process, port, log_path = served
    body = json.dumps({"id": "in-flight", "inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                                       "data": [0.25] * 784}]}).encode()
    head = (f"POST /v2/models/tiny-fashion/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body[:100])  # the request is in flight: headers in, body still arriving
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the server quit with a request in flight"
        with pytest.raises(OSError):  # it stopped accepting new connections
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        sock.sendall(body[100:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    assert b"200" in status_line, response[:500]
    answer = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert answer["id"] == "in-flight" and answer["outputs"][0]["shape"] == [1, 10]
    assert process.wait(30) in (0, -signal.SIGTERM)
    assert any(line.get("event") == "request" and line["id"] and line["status"] == 200 for line in log_lines(log_path))


def test_serve_refuses_a_busy_port_and_unknown_models(tiny_store, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(tiny_store.roots[0], port, tmp_path / "busy.log")
        assert process.wait(60) == 2
    assert "cannot listen on 127.0.0.1" in (tmp_path / "busy.log").read_text()
    process = start(tiny_store.roots[0], free_port(), tmp_path / "unknown.log", "--models", "tiny-fashion,lenet5-fashion")
    assert process.wait(60) == 2
    text = (tmp_path / "unknown.log").read_text()
    assert "'lenet5-fashion' is not in the store" in text and "Traceback" not in text
