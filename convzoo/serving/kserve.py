"""The KServe v2 / Open Inference Protocol REST routes, as ``tritonclient.http`` and KServe clients call them.

Infer bodies are read raw: tritonclient sends them without a Content-Type, and with the binary
tensor data extension the body is a JSON header followed by raw tensor bytes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from pydantic import BaseModel
from starlette._utils import get_route_path

from convzoo import __version__
from convzoo.errors import UnknownModelError
from convzoo.registry import validate_name
from convzoo.serving.batching import Overloaded, ShuttingDown
from convzoo.serving.limits import Limits
from convzoo.serving.memory import Reservation
from convzoo.serving.pool import BINARY_BYTES_PER_VALUE, JSON_BYTES_PER_VALUE, Pool, Served
from convzoo.serving.tensors import (
    DATATYPES,
    InferResponseBody,
    ProtocolError,
    decode_request,
    decompress,
    encode_response,
    forget,
    json_length,
    split_body,
)

log = logging.getLogger("convzoo.serving")

EXTENSIONS = ["binary_tensor_data", "classification"]
INLINE_BYTES = 64 * 1024  # bodies above this are decoded and encoded off the event loop
JSON_PARSE_FACTOR = 12  # bytes of Python objects a JSON byte can become ("0.5," -> a float and its slot)


class ErrorBody(BaseModel):
    error: str


ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 503)}
INFER_BODY = {"requestBody": {"required": True, "description": (
    "A KServe v2 inference request. With the binary tensor data extension the JSON header is followed by the "
    "raw tensors, and the Inference-Header-Content-Length header gives the JSON header's length."),
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferRequestBody"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def error_response(error: ProtocolError) -> JSONResponse:
    """``{"error": ...}`` with the error's status; a 503 says when to retry."""
    headers = {"Retry-After": "1"} if error.status == 503 else {}
    forget(error)  # answered: the request's frames need not outlive it
    return JSONResponse({"error": error.message}, status_code=error.status, headers=headers | error.headers)


def internal_error(method: str, path: str, error: Exception) -> JSONResponse:
    """A fault of this server, not of the request: logged with its traceback, named to the client."""
    log.error("unhandled error on %s %s", method, path, exc_info=error)
    return JSONResponse({"error": f"internal error ({type(error).__name__}); the server log has the details"},
                        status_code=500)


def lookup(pool: Pool, name: str, version: str | None = None) -> Served:
    try:
        validate_name(name)
    except UnknownModelError as e:
        raise ProtocolError(400, str(e)) from None
    served = pool.get(name)
    if served is None:
        raise ProtocolError(404, f"no model named {name!r} is served here; served models: {', '.join(pool.models)}")
    if version is not None and version != "1":
        raise ProtocolError(404, f"model {name!r} has one version, '1'; got version {version!r}")
    return served


def require_ready(served: Served) -> Served:
    if not served.ready:
        raise ProtocolError(503, f"model {served.name!r} is not ready: {served.reason}")
    return served


def model_metadata(served: Served) -> dict:
    return {"name": served.name, "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [spec.to_json() for spec in served.inputs],
            "outputs": [spec.to_json() for spec in served.outputs],
            "parameters": {"task": served.task, "labels": len(served.model.labels),
                           "sha256": served.stored.sha256 if served.stored else None}}


def reservation_of(request: Request) -> Reservation:
    """The request's memory reservation, opened by the Guard middleware when it read the body."""
    reservation = getattr(request.state, "reservation", None)
    if reservation is None:
        raise RuntimeError("the Guard middleware must wrap the app: it opens each request's memory reservation")
    return reservation


def single_header(request: Request, name: str) -> str | None:
    """A header that must have one value; the same header twice with different values is refused."""
    values = request.headers.getlist(name)
    if len(set(values)) > 1:
        raise ProtocolError(400, f"the header {name} is given {len(values)} times with different values; send it once")
    return values[0] if values else None


def router(pool: Pool, limits: Limits, *, private: bool = False) -> APIRouter:
    """``private``: a token guards the server, so the public health probes say nothing about the store."""
    r = APIRouter(tags=["KServe v2 (Open Inference Protocol)"])

    @r.get("/v2/health/live", summary="Liveness: the process answers")
    async def live() -> dict:
        return {"live": True}

    @r.get("/v2/health/ready", summary="Readiness: every model loaded, verified and warmed up",
           responses={400: {"description": "not ready; the body names the models that are not, and why"}})
    async def ready() -> Response:
        if pool.ready:
            return JSONResponse({"ready": True})
        reasons = pool.not_ready_reasons()
        if private:  # the reasons name files and errors: only for callers with the token
            reasons = {name: pool.models[name].state for name in reasons}
        detail = "; ".join(f"{name}: {reason}" for name, reason in reasons.items()) or "still loading"
        # the protocol: 200 means ready, a 4xx means not (Triton answers 400)
        return JSONResponse({"ready": False, "error": f"not ready: {detail}", "models": reasons}, status_code=400)

    @r.get("/v2", summary="Server metadata and the protocol extensions it supports")
    async def server_metadata() -> dict:
        return {"name": "convzoo", "version": __version__, "extensions": EXTENSIONS}

    @r.get("/v2/models/{name}", summary="Model metadata: inputs and outputs, -1 for dynamic dimensions",
           responses=ERRORS)
    async def metadata(name: str) -> dict:
        return model_metadata(require_ready(lookup(pool, name)))

    @r.get("/v2/models/{name}/versions/{version}", summary="Model metadata (version 1)", responses=ERRORS)
    async def metadata_version(name: str, version: str) -> dict:
        return model_metadata(require_ready(lookup(pool, name, version)))

    @r.get("/v2/models/{name}/ready", summary="Model readiness; when not ready the error says why",
           responses=ERRORS)
    async def model_ready(name: str) -> Response:
        return _ready(lookup(pool, name))

    @r.get("/v2/models/{name}/versions/{version}/ready", summary="Model readiness (version 1)", responses=ERRORS)
    async def model_ready_version(name: str, version: str) -> Response:
        return _ready(lookup(pool, name, version))

    @r.post("/v2/models/{name}/infer", summary="Inference: JSON tensors or the binary tensor data extension",
            response_model=InferResponseBody, responses=ERRORS, openapi_extra=INFER_BODY)
    async def infer(name: str, request: Request) -> Response:
        return await _infer(pool, limits, lookup(pool, name), request)

    @r.post("/v2/models/{name}/versions/{version}/infer", summary="Inference (version 1)",
            response_model=InferResponseBody, responses=ERRORS, openapi_extra=INFER_BODY)
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await _infer(pool, limits, lookup(pool, name, version), request)

    return r


INFER_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")


class InferLane:
    """ASGI middleware: ``POST .../infer`` straight to its handler, every other request to the app.

    FastAPI's routing and per-request dependency solving cost about 170 µs of the event loop's time
    per request (``benchmarks/README.md``), more than decoding a JSON image; inference is the one route
    where that matters. The infer routes stay declared on the router, which documents them (OpenAPI)
    and names them in the metrics; both run the same ``_infer``.
    """

    def __init__(self, app, pool: Pool, limits: Limits, routes: APIRouter) -> None:
        self.app = app
        self.pool = pool
        self.limits = limits
        self.routes = {route.path: route for route in routes.routes if route.path.endswith("/infer")}

    async def __call__(self, scope, receive, send) -> None:
        match = (INFER_PATH.fullmatch(get_route_path(scope))
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        if match is None:
            await self.app(scope, receive, send)
            return
        name, version = match["name"], match["version"]
        # what the router would have set: Telemetry labels the request with the route template and model
        scope["route"] = self.routes["/v2/models/{name}/versions/{version}/infer" if version is not None
                                     else "/v2/models/{name}/infer"]
        scope["path_params"] = {"name": name} if version is None else {"name": name, "version": version}
        try:
            response = await _infer(self.pool, self.limits, lookup(self.pool, name, version), Request(scope, receive))
        except ProtocolError as e:
            response = error_response(e)
        except Exception as e:  # noqa: BLE001 -- a bug here is answered like one anywhere else: 500, logged
            response = internal_error(scope["method"], scope["path"], e)
        await response(scope, receive, send)


def _ready(served: Served) -> Response:
    if served.ready:
        return JSONResponse({"name": served.name, "ready": True})
    return JSONResponse({"name": served.name, "ready": False, "state": served.state,
                         "error": f"model {served.name!r} is not ready: {served.reason}"}, status_code=400)


def _decode(served: Served, limits: Limits, body: bytes, header_length: str | None):
    payload, binary = split_body(body, header_length, limits.max_json, limits.max_json_values)
    return decode_request(payload, binary, served.inputs, served.outputs, max_batch=limits.max_batch,
                          size_multiple=served.size_multiple, max_pixels=limits.max_pixels, min_side=served.min_side)


def largest_request(served: Served, limits: Limits) -> int:
    """The most bytes a valid request to this model can hold: its JSON part plus its largest tensors."""
    tensors = 0
    for spec in served.inputs:
        dims = [limits.max_batch if i == 0 and d == -1 else d for i, d in enumerate(spec.shape)]
        if any(d == -1 for d in dims):
            return limits.max_body
        tensors += math.prod(dims) * max(DATATYPES[spec.datatype].itemsize, 8)
    return min(limits.max_body, limits.max_json + tensors)


async def _infer(pool: Pool, limits: Limits, served: Served, request: Request) -> Response:
    require_ready(served)
    reservation = reservation_of(request)
    with served.batcher.arriving():
        body = await request.body()
        encoding = single_header(request, "content-encoding")
        header_length = single_header(request, "inference-header-content-length")
        declared_json = json_length(header_length) if header_length is not None else None
        if declared_json is not None and declared_json > limits.max_json:
            raise ProtocolError(413, f"Inference-Header-Content-Length is {declared_json:,} bytes, more than this "
                                     f"server's limit of {limits.max_json:,} for the JSON part")
        if encoding and encoding.lower() != "identity":
            # inflated off the event loop, never past what a valid request to this model can be
            limit = (largest_request(served, limits) if header_length is not None
                     else min(limits.max_json, limits.max_body))
            # twice: the inflated pieces and their joined copy live together for a moment
            await reservation.grow(2 * limit, "the inflated body")
            body = await run_in_threadpool(decompress, body, encoding, limit)
        json_part = len(body) if declared_json is None else declared_json
        await reservation.grow(JSON_PARSE_FACTOR * min(json_part, limits.max_json, len(body)), "the JSON header")
        decode = partial(_decode, served, limits, body, header_length)
        decoded = decode() if len(body) < INLINE_BYTES else await run_in_threadpool(decode)
    as_json = any(not wanted.binary for wanted in decoded.outputs)
    await reservation.grow(served.cost([a.shape for a in decoded.inputs.values()],
                                       encode_bytes_per_value=JSON_BYTES_PER_VALUE if as_json
                                       else BINARY_BYTES_PER_VALUE), f"running {served.name!r} on this input")
    results = await run_batch(served, decoded.inputs)
    encode = partial(encode_response, served.name, decoded, results, served.model.labels)
    large = decoded.batch * sum(a[0].size for a in results.values()) * 4 > INLINE_BYTES
    content, header_length = await run_in_threadpool(encode) if large else encode()
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


async def run_batch(served: Served, feeds) -> dict:
    """Through the model's batcher; server-side failures become 503 (busy, stopping) or 500 with the cause."""
    try:
        return await served.batcher.submit(feeds)
    except (Overloaded, ShuttingDown) as e:
        raise ProtocolError(503, str(e)) from None
    except asyncio.CancelledError:
        raise
    except InvalidArgument as e:  # onnxruntime refuses this input (a size the graph cannot take)
        raise ProtocolError(400, f"model {served.name!r} cannot run on this input: {str(e).splitlines()[0][:300]}"
                            ) from None
    except Exception as e:  # noqa: BLE001 -- onnxruntime's own error types; the message is the useful part
        raise ProtocolError(500, f"inference failed for model {served.name!r}: {type(e).__name__}: {e}") from None
