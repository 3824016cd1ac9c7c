"""Prometheus metrics and one structured log line per request.

Each app has its own ``CollectorRegistry``, so two services in one process (tests) never share
counters. Labels take route templates and served model names only: a client cannot grow the label
set by inventing URLs.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Callable, Collection

import orjson

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

log = logging.getLogger("convzoo.serving")
disable_created_metrics()  # the *_created series double the exposition and no dashboard reads them

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("convzoo_requests", "HTTP requests by route, model and status",
                                ["route", "model", "status"], registry=r)
        self.latency = Histogram("convzoo_request_seconds", "HTTP request latency, from first byte to response",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Histogram("convzoo_queue_seconds", "time a request waited for its batch to start",
                               ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("convzoo_inference_seconds", "onnxruntime time per executed batch",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("convzoo_batch_size", "rows (images) per executed batch",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("convzoo_batch_requests", "requests merged into one executed batch",
                                        ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.ready = Gauge("convzoo_model_ready", "1 when the model is loaded, verified and warmed up",
                           ["model"], registry=r)
        self.in_flight = Gauge("convzoo_requests_in_flight", "HTTP requests being handled", registry=r)

        # each label set's series, looked up once (labels are route templates, served models and statuses)
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._batch_series: dict[str, tuple[Histogram, ...]] = {}

    def request_series(self, route: str, model: str, status: int) -> tuple[Counter, Histogram]:
        key = (route, model, status)
        if key not in self._request_series:
            self._request_series[key] = (self.requests.labels(route, model, str(status)),
                                         self.latency.labels(route, model))
        return self._request_series[key]

    def batch_series(self, model: str) -> tuple[Histogram, ...]:
        if model not in self._batch_series:
            self._batch_series[model] = (self.inference.labels(model), self.batch_rows.labels(model),
                                         self.batch_requests.labels(model), self.queue.labels(model))
        return self._batch_series[model]

    def observe_batch(self, model: str, rows: int, requests: int, seconds: float, waits: list[float]) -> None:
        inference, batch_rows, batch_requests, queue = self.batch_series(model)
        inference.observe(seconds)
        batch_rows.observe(rows)
        batch_requests.observe(requests)
        for wait in waits:
            queue.observe(wait)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Telemetry:
    """ASGI middleware: request id, the metrics above, and the log line, for every HTTP request."""

    def __init__(self, app, metrics: Metrics, model_names: Callable[[], Collection[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self.model_names = model_names

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        status = {"code": 500, "bytes": 0}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"x-request-id", request_id.encode("latin-1"))]}
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            name = (scope.get("path_params") or {}).get("name")
            model = name if isinstance(name, str) and name in self.model_names() else ""
            count, latency = self.metrics.request_series(route, model, status["code"])
            count.inc()
            latency.observe(seconds)
            if log.isEnabledFor(logging.INFO):
                self._log(scope, headers, request_id, route, model, status, seconds)

    @staticmethod
    def _log(scope, headers: dict, request_id: str, route: str, model: str, status: dict, seconds: float) -> None:
        client = scope.get("client")
        length = headers.get(b"content-length", b"")
        now = datetime.datetime.now(datetime.timezone.utc)
        log.info(orjson.dumps({
            "event": "request", "ts": now.isoformat(timespec="milliseconds"), "id": request_id,
            "method": scope.get("method"), "path": scope.get("path"), "route": route, "model": model or None,
            "status": status["code"], "ms": round(seconds * 1000, 3), "bytes_out": status["bytes"],
            "bytes_in": int(length) if length.isdigit() else None,
            "client": f"{client[0]}:{client[1]}" if client else None}).decode())
