"""The service: one process, every model in the store, KServe v2 plus image endpoints, on onnxruntime.

``create_app`` builds the FastAPI app (models load in a background thread after start-up, so the
liveness probe answers at once and readiness follows); ``serve`` runs it under uvicorn, which
finishes requests in flight when it gets SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from convzoo import __version__
from convzoo.errors import ConvzooError
from convzoo.registry import Store
from convzoo.serving import images, kserve, logs
from convzoo.serving.limits import Limits
from convzoo.serving.memory import MemoryBudget, tune_allocator
from convzoo.serving.metrics import Metrics, Telemetry
from convzoo.serving.pool import Pool
from convzoo.serving.protocol import server_config
from convzoo.serving.security import Guard, HeadAsGet, cors_origins_from_env
from convzoo.serving.tensors import InferRequestBody, ProtocolError

log = logging.getLogger("convzoo.serving")
TILING_SLACK = 2  # a tiled run may cover twice the pixel limit: a 2048 x 2048 input runs as 25 overlapping tiles

DESCRIPTION = """The classic CNNs of convzoo on ONNX Runtime.

* **KServe v2 / Open Inference Protocol** (`/v2/...`): JSON tensors and the binary tensor data
  extension, the classification extension; `tritonclient.http` works unchanged.
* **Images** (`/v1/...`): upload a PNG, JPEG or WebP and get labels, a mask or a stylised image;
  download the ONNX files with their sha256.
* `/metrics`: Prometheus. Errors are `{"error": "..."}` with a 4xx status for requests that are wrong.
"""


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs, as `convzoo serve`'s flags say it: one record from the command line to the app.

    ``token``: bearer token for every route but health; ``cors_origins``: the browser origins allowed to
    call it (none by default; ``$CONVZOO_CORS_ORIGINS``); ``limits``: sizes, times and the memory budget
    (``Limits.from_env()`` by default, then ``max_body_bytes``, ``max_pixels`` and ``max_batch``); ``spin``:
    let onnxruntime's idle threads busy-wait (off: on a few cores the spinning takes the CPU the requests
    need, see benchmarks/README.md)."""

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] | None = None  # None: every model in the store
    threads: int | None = None  # onnxruntime intra-op threads per session
    spin: bool = False
    max_batch: int = 32
    batch_delay_ms: float = 2.0
    token: str | None = None
    cors_origins: tuple[str, ...] | None = None
    max_body_bytes: int | None = None
    max_pixels: int | None = None
    limits: Limits | None = None
    log_format: str | None = None  # json (default) or text
    load_in_background: bool = True

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConvzooError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.batch_delay_ms < 0:
            raise ConvzooError(f"--batch-delay-ms must be 0 (batching off) or more, got {self.batch_delay_ms}")
        for name in ("models", "cors_origins"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def resolved_limits(self) -> Limits:
        return self.limits or Limits.from_env(max_body=self.max_body_bytes, max_pixels=self.max_pixels,
                                              max_batch=self.max_batch)


def create_app(store: Store | None = None, models: Sequence[str] | None = None, *, config: ServeConfig | None = None,
               **settings: Any) -> FastAPI:
    """The service as an ASGI app, run as ``config`` says (or a ``ServeConfig`` of ``models`` and ``settings``,
    its field names as keywords)."""
    config = config or ServeConfig(models=models, **settings)
    models, threads, spin, token = config.models, config.threads, config.spin, config.token
    batch_delay_ms, cors_origins, load_in_background = config.batch_delay_ms, config.cors_origins, config.load_in_background
    store = store if store is not None else Store()
    limits = config.resolved_limits()
    budget = MemoryBudget(limits.memory_budget, limits.memory_wait_s)
    tune_allocator()
    metrics = Metrics()
    pool = Pool(store, models, threads=threads, spin=spin, max_batch=limits.max_batch, batch_delay_ms=batch_delay_ms,
                observe=metrics.observe_batch, tile=limits.tile,
                max_run_pixels=TILING_SLACK * limits.max_pixels)
    pool.on_state = lambda served: metrics.ready.labels(served.name).set(1 if served.ready else 0)
    for served in pool:
        metrics.ready.labels(served.name).set(0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if load_in_background:
            threading.Thread(target=pool.load_all, name="convzoo-load-models", daemon=True).start()
        else:
            pool.load_all()
        yield
        await pool.close()

    app = FastAPI(title="convzoo inference service", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.pool, app.state.metrics, app.state.limits, app.state.budget = pool, metrics, limits, budget
    v2 = kserve.router(pool, limits, private=bool(token))
    app.include_router(v2)
    app.include_router(images.router(pool, limits))

    @app.get("/metrics", tags=["Operations"], summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        data, content_type = metrics.exposition()
        return Response(data, media_type=content_type)

    _error_handlers(app)
    app.openapi = lambda: _openapi(app)
    origins = list(cors_origins) if cors_origins is not None else cors_origins_from_env()
    # Starlette wraps middleware outside-in in reverse order of adding: CORS answers preflights before the token
    # check; the infer lane runs inside the guard (token, body limit, memory) and the telemetry
    app.add_middleware(kserve.InferLane, pool=pool, limits=limits, routes=v2)
    app.add_middleware(HeadAsGet)
    app.add_middleware(Guard, token=token, limits=limits, budget=budget)
    app.add_middleware(Telemetry, metrics=metrics, model_names=lambda: pool.models)
    if origins:
        app.add_middleware(JSONCORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "HEAD", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "Inference-Header-Content-Length",
                                          "Content-Encoding", "X-Request-ID"],
                           expose_headers=["Inference-Header-Content-Length", "ETag", "X-Convzoo-Sha256",
                                           "X-Convzoo-Fractions", "X-Request-ID"])
    return app


class JSONCORSMiddleware(CORSMiddleware):
    """CORS for the named origins; a refused preflight says why in JSON, as every other error does."""

    def preflight_response(self, request_headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse({"error": f"CORS preflight refused: {response.body.decode(errors='replace')}; this server "
                                      "allows the origins, methods and headers set by --cors-origins"},
                            status_code=response.status_code, headers=headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, error: ProtocolError) -> JSONResponse:
        return kserve.error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
        if error.status_code == 404:
            message = (f"no route {request.method} {request.url.path}; the routes are listed at /docs "
                       "(KServe v2 under /v2, images under /v1)")
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:3]]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return kserve.internal_error(request.method, request.url.path, error)


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        request_schema = InferRequestBody.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["InferRequestBody"] = request_schema
        served = list(app.state.pool.models)
        for path in schema.get("paths", {}).values():  # the model names this server answers for, as an enum
            for operation in path.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path" and parameter["name"] == "name":
                        parameter["schema"] = {"type": "string", "title": "Name", "enum": served}
                    elif parameter.get("in") == "path" and parameter["name"] == "version":
                        parameter["schema"] = {"type": "string", "title": "Version", "enum": ["1"]}
        app.openapi_schema = schema
    return app.openapi_schema


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConvzooError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port or --host"
                               ) from None


def serve(store: Store | None = None, config: ServeConfig | None = None, **settings: Any) -> None:
    """``convzoo serve``: run the service until SIGTERM or Ctrl-C, finishing the requests in flight.

    Every line it writes is one JSON object (``log_format="text"`` or ``$CONVZOO_LOG_FORMAT=text`` for plain
    lines), uvicorn's own included; a reason not to start (a busy port, an unknown model) is such a line too,
    and the process exits with status 2: a setting out of range too, so the record is made after the logs
    are installed."""
    log_config = logs.install(logs.log_format(config.log_format if config else settings.get("log_format")))
    try:
        config = config or ServeConfig(**settings)
        token = config.token or os.environ.get("CONVZOO_TOKEN") or None
        app = create_app(store, config=dataclasses.replace(config, token=token))
        _check_port(config.host, config.port)
    except ConvzooError as e:
        log.error(json.dumps({"event": "error", "message": str(e)}))
        raise SystemExit(2) from None
    pool = app.state.pool
    host, port, max_batch, batch_delay_ms = config.host, config.port, config.max_batch, config.batch_delay_ms
    log.info(json.dumps({"event": "start", "url": f"http://{host}:{port}", "models": list(pool.models),
                         "max_batch": max_batch, "batch_delay_ms": batch_delay_ms, "auth": bool(token),
                         "docs": f"http://{host}:{port}/docs"}))
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        log.warning(json.dumps({"event": "warning", "message": f"listening on {host} without a token; "
                                "anyone who reaches this port can use it (set --token or $CONVZOO_TOKEN)"}))
    uvicorn.Server(server_config(app, host, port, app.state.limits, log_level="info", log_config=log_config,
                                 timeout_graceful_shutdown=30)).run()
