"""`convzoo serve` writes one log format: every line one JSON object, uvicorn's own included (issue 24);
`--log-format text` gives plain lines instead."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from convzoo.serving import logs
from convzoo.serving.background import wait_ready

ROOT = Path(__file__).resolve().parent.parent


def serve(store: Path, port: int, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(out, "w") as log:  # a file, not a pipe: the server can never block on a full pipe
        return subprocess.Popen([sys.executable, "-m", "convzoo.cli", "serve", "--store", str(store), "--host",
                                 "127.0.0.1", "--port", str(port), *extra], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=ROOT)


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_every_line_the_service_writes_is_one_json_object(tiny_store, tmp_path):
    port, out = free_port(), tmp_path / "serve.log"
    process = serve(tiny_store.roots[0], port, out, env={"CONVZOO_LOG_FORMAT": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=60)
        assert call(f"{url}/v2/models/tiny-fashion") == 200
        assert call(f"{url}/v2/models/tiny-fashion/infer", b'{"inputs": [', {"Content-Type": "application/json"}) == 400
        assert call(f"{url}/v1/models/tiny-fashion/predict", b"not an image", {"Content-Type": "image/png"}) == 415
        assert call(f"{url}/no/such/route") == 404
    finally:
        stop(process)
    lines = out.read_text().splitlines()
    assert len(lines) >= 10
    for line in lines:
        entry = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(entry, dict) and {"ts", "level", "logger", "event"} <= set(entry), line
    entries = [json.loads(line) for line in lines]
    uvicorn = [e["message"] for e in entries if e["logger"].startswith("uvicorn")]
    assert any("Uvicorn running on" in m for m in uvicorn) and any("Finished server process" in m for m in uvicorn)
    statuses = {e["status"] for e in entries if e["event"] == "request"}
    assert {200, 400, 404, 415} <= statuses


@pytest.mark.slow
def test_log_format_text_writes_plain_lines_and_a_refusal_is_a_json_line(tiny_store, tmp_path):
    port, out = free_port(), tmp_path / "serve.log"
    process = serve(tiny_store.roots[0], port, out, "--log-format", "text")
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
    finally:
        stop(process)
    text = out.read_text()
    assert " INFO uvicorn.error: Uvicorn running on" in text and " INFO convzoo.serving: start url=" in text
    assert not any(line.startswith("{") for line in text.splitlines())

    refused = serve(tiny_store.roots[0], free_port(), tmp_path / "refused.log", "--models", "no-such-model")
    assert refused.wait(60) == 2
    [line] = (tmp_path / "refused.log").read_text().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["event"] == "error" and "'no-such-model'" in entry["message"]

    out_of_range = serve(tiny_store.roots[0], free_port(), tmp_path / "range.log", "--max-batch", "0")
    assert out_of_range.wait(60) == 2
    [line] = (tmp_path / "range.log").read_text().splitlines()
    assert json.loads(line)["message"] == "--max-batch must be at least 1, got 0"


def record(message: str, name: str = "uvicorn.error", args: tuple = (), exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, exc_info)


def test_the_json_formatter_merges_events_and_keeps_tracebacks_on_one_line():
    fmt = logs.JSONFormatter()
    event = json.loads(fmt.format(record('{"event": "model_ready", "model": "m"}', "convzoo.serving")))
    assert event["event"] == "model_ready" and event["model"] == "m" and event["logger"] == "convzoo.serving"
    plain = json.loads(fmt.format(record("Started server process [%d]", args=(12,))))
    assert plain["event"] == "log" and plain["message"] == "Started server process [12]"
    access = json.loads(fmt.format(record('%s - "%s %s HTTP/%s" %d', "uvicorn.access",
                                          ("1.2.3.4:5", "GET", "/v2", "1.1", 200))))
    assert access | {"ts": None} == {"ts": None, "level": "info", "logger": "uvicorn.access", "event": "access",
                                     "client": "1.2.3.4:5", "method": "GET", "path": "/v2", "http": "1.1", "status": 200}
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        line = fmt.format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["error"]


def test_the_log_format_comes_from_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv(logs.ENV, raising=False)
    assert logs.log_format(None) == "json"
    monkeypatch.setenv(logs.ENV, "TEXT")
    assert logs.log_format(None) == "text" and logs.log_format("json") == "json"
    monkeypatch.setenv(logs.ENV, "xml")
    with pytest.raises(Exception, match="CONVZOO_LOG_FORMAT must be json or text"):
        logs.log_format(None)
