"""Endpoints for people: the catalogue, predict from an uploaded image, download the ONNX file.

Preprocessing comes from the model's own ONNX metadata (``convzoo.runtime``), exactly as in the
demos and in a user's own script. Classification requests share the model's batcher with v2
inference; segmentation and style run at each image's own size, so they run as they come.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image

from convzoo import catalogue
from convzoo.bounds import SERVICE_FORMATS, ImageLimits, decode_cost, load_image, open_image, upright_size
from convzoo.errors import BadInputError, ConvzooError
from convzoo.registry import BrokenModel
from convzoo.runtime import segment_tiled, style_size
from convzoo.tasks.classification import Classification
from convzoo.tasks.segmentation import Segmentation
from convzoo.serving.kserve import ERRORS, lookup, require_ready, reservation_of, run_batch
from convzoo.serving.limits import Limits
from convzoo.serving.memory import Reservation
from convzoo.serving.pool import Pool, Served
from convzoo.serving.tensors import ProtocolError

log = logging.getLogger("convzoo.serving")

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "application/octet-stream")
PALETTE = [0, 0, 0, 255, 255, 255, 230, 25, 75, 60, 180, 75, 255, 225, 25, 0, 130, 200, 245, 130, 48, 145, 30, 180]

PREDICT_BODY = {"requestBody": {"required": True, "description": (
    "A PNG, JPEG or WebP image: as a multipart/form-data upload (field 'image') or as the raw request body."),
    "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}}}},
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES}}}}


MASK_BYTES_PER_PIXEL = 6  # per class and pixel: the class map (int64 over the classes), its PNG and base64
PNG_BYTES_PER_VALUE = 4  # a styled image's uint8 pixels, its PNG, and the base64 of a JSON answer


def image_limits(limits: Limits) -> ImageLimits:
    """The service's image limits: the one reader's (``convzoo.bounds``), with this server's sizes."""
    return ImageLimits(max_bytes=limits.max_body, max_pixels=limits.max_pixels, formats=SERVICE_FORMATS)


def _refused(error: BadInputError) -> ProtocolError:
    return ProtocolError(getattr(error, "status", 400), str(error))


def open_upload(data: bytes, limits: ImageLimits) -> Image.Image:
    """An upload opened and checked (bytes, pixels, JPEG scans) from its header; no pixel decoded yet."""
    try:
        return open_image(data, limits)
    except BadInputError as e:
        raise _refused(e) from None


def decode_upload(image: Image.Image) -> Image.Image:
    """The opened upload's pixels, upright as its EXIF orientation says (as the app shows it)."""
    try:
        return load_image(image)
    except BadInputError as e:
        raise _refused(e) from None


async def read_upload(request: Request, limits: Limits,
                      cost: Callable[[int, int], Awaitable[None]] | None = None) -> Image.Image:
    """The uploaded image, decoded; ``cost(width, height)`` reserves (or refuses) what the work on an image
    of that size will take, before its pixels are decompressed (None: the work is costed later, on a
    tensor whose size does not depend on the image's)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=2, max_fields=10)
        except Exception as e:  # noqa: BLE001 -- python-multipart's parse errors
            raise ProtocolError(400, f"malformed multipart body ({e}); send the image as field 'image'") from None
        upload = form.get("image") or form.get("file")
        if upload is None or isinstance(upload, str):
            fields = ", ".join(form) or "none"
            raise ProtocolError(400, f"the multipart body has no file field 'image' (fields: {fields})")
        data = await upload.read()
    elif kind in ("", *IMAGE_TYPES, "application/x-www-form-urlencoded"):  # the last: curl --data-binary's default
        data = await request.body()
    else:
        raise ProtocolError(415, f"Content-Type {kind!r} is not an image upload: send image/png, image/jpeg, "
                                 "image/webp, or multipart/form-data with field 'image'")
    if not data:
        raise ProtocolError(400, "no image: send a PNG, JPEG or WebP as the body, or as multipart field 'image'")
    image = await run_in_threadpool(open_upload, data, image_limits(limits))
    width, height = upright_size(image)
    await reservation_of(request).grow(decode_cost(image), "decoding this image")
    if cost is not None:
        await cost(width, height)
    return await run_in_threadpool(decode_upload, image)


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def mask_image(classes: np.ndarray) -> Image.Image:
    """A palette PNG: each pixel's value is its class index, shown in distinct colours."""
    mask = Image.fromarray(classes.astype(np.uint8), mode="P")
    mask.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    return mask


def catalogue_entry(served: Served) -> dict:
    """The catalogue row (``convzoo.catalogue``, as `convzoo list` shows it) with what this server makes of it."""
    stored = served.stored
    entry = stored.manifest.get("entry", {}) if stored is not None else {}
    found = stored if stored is not None or served.state != "failed" else BrokenModel(served.name, Path(),
                                                                                          served.reason)
    item = catalogue.row(served.name, found).to_json() | {
        "task": served.task or "-", "ready": served.ready, "state": served.state,
        "labels": list(served.model.labels) if served.model is not None else list(entry.get("labels", [])),
        "preprocess": entry.get("preprocess"), "paper": entry.get("paper"), "year": entry.get("year"),
        "links": {"predict": f"/v1/models/{served.name}/predict", "onnx": f"/v1/models/{served.name}/onnx",
                  "infer": f"/v2/models/{served.name}/infer"}}
    if not served.ready:
        item["reason"] = served.reason
    return item


def router(pool: Pool, limits: Limits) -> APIRouter:
    r = APIRouter(tags=["Images (for people)"])

    @r.get("/v1/models", summary="The catalogue: every served model with its task, labels, metrics and sha256")
    async def catalogue() -> dict:
        return {"models": [catalogue_entry(served) for served in pool]}

    @r.get("/v1/models/{name}", summary="One model of the catalogue", responses=ERRORS)
    async def one(name: str) -> dict:
        return catalogue_entry(lookup(pool, name))

    @r.post("/v1/models/{name}/predict", responses={**ERRORS, 200: {"content": {
                "application/json": {}, "image/png": {}},
                "description": "classification: top-k labels (JSON); segmentation: the mask (PNG, or JSON with "
                               "class fractions); style: the stylised image (PNG)"}},
            summary="Predict from an image (PNG, JPEG, WebP): labels, a mask, or a stylised image",
            openapi_extra=PREDICT_BODY)
    async def predict(name: str, request: Request,
                      k: int = Query(5, ge=1, le=1000, description="classification: how many labels"),
                      format: Literal["json", "png"] | None = Query(
                          None, description="json or png (default: json for classification, png otherwise)"),
                      max_side: int = Query(512, ge=16, description="style: longest side of the output, up to "
                                            "the server's ceiling (1024 unless $CONVZOO_STYLE_MAX_SIDE says)")
                      ) -> Response:
        served = require_ready(lookup(pool, name))
        answer = ANSWERS.get(served.task)
        if answer is None:
            raise ProtocolError(400, f"model {name!r} has task {served.task!r}, which this route does not answer")
        return await answer(served, request, limits, Asked(k, format, max_side))

    @r.get("/v1/models/{name}/onnx", summary="Download the ONNX file (ETag and X-Convzoo-Sha256 carry its sha256; "
           "range requests work)", response_class=FileResponse, responses=ERRORS)
    async def download(name: str, request: Request) -> Response:
        served = lookup(pool, name)
        try:
            stored = served.stored or pool.store.get(name)
            await run_in_threadpool(stored.verify)  # never hand out a file that does not match its manifest
            size = stored.onnx_path.stat().st_size
        except (ConvzooError, OSError) as e:
            log.error(json.dumps({"event": "download_refused", "model": name, "reason": str(e)}))
            raise ProtocolError(503, f"model {name!r} cannot be downloaded: {pool.public(str(e))}") from None
        etag = f'"{stored.sha256}"'
        digest = base64.b64encode(bytes.fromhex(stored.sha256)).decode()
        headers = {"ETag": etag, "X-Convzoo-Sha256": stored.sha256, "Repr-Digest": f"sha-256=:{digest}:",
                   "Cache-Control": "no-cache"}
        if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        check_range(request.headers.getlist("range"), size)
        return FileResponse(stored.onnx_path, media_type="application/octet-stream", filename=f"{name}.onnx",
                            headers=headers)

    return r


RANGE = re.compile(r"^\s*([0-9]{0,18})\s*-\s*([0-9]{0,18})\s*$")  # ASCII digits, at most 18 of them


def check_range(values: list[str], size: int) -> None:
    """Refuse, with a JSON error, a Range header that the file server would answer in plain text."""
    if not values:
        return
    shown = values[0][:60] + ("..." if len(values[0]) > 60 else "")
    if len(values) > 1:
        raise ProtocolError(400, "the Range header is given more than once; send one")
    unit, _, ranges = values[0].partition("=")
    if unit.strip().lower() != "bytes" or not ranges.strip():
        raise ProtocolError(400, f"Range {shown!r} is not understood: use bytes=START-END, e.g. bytes=0-1023")
    for part in ranges.split(","):
        match = RANGE.match(part)
        if match is None or match.groups() == ("", ""):
            raise ProtocolError(400, f"Range {shown!r} is not understood: use bytes=START-END, e.g. bytes=0-1023")
        start, end = match.groups()
        if start and end and int(start) > int(end):
            raise ProtocolError(400, f"Range {shown!r} ends before it starts")
        satisfiable = int(start) < size if start else int(end) > 0
        if not satisfiable:
            raise ProtocolError(416, f"Range {shown!r} lies outside the file's {size:,} bytes",
                                headers={"Content-Range": f"bytes */{size}"})


class Asked(NamedTuple):
    k: int
    format: str | None
    max_side: int


async def _answer_classification(served: Served, request: Request, limits: Limits, asked: Asked) -> Response:
    if asked.format == "png":
        raise ProtocolError(400, "classification answers JSON; leave out format or use format=json")
    image = await read_upload(request, limits)  # _classify costs the tensor, whose size is the model's
    return JSONResponse(await _classify(served, image, asked.k, reservation_of(request)))


async def _answer_segmentation(served: Served, request: Request, limits: Limits, asked: Asked) -> Response:
    reservation = reservation_of(request)
    channels = 3 if served.model.preprocess_spec.color == "rgb" else 1

    async def cost(width: int, height: int) -> None:  # what the work on this image will take, before decoding
        await reservation.grow(served.cost([(1, channels, height, width)], tiled=True,
                                           encode_bytes_per_value=MASK_BYTES_PER_PIXEL), "segmenting this image")

    image = await read_upload(request, limits, cost)
    probs = await _run_heavy(served, segment_tiled, served.model, image, limits.tile, batch=1, shrink_arena=True)
    return _segmentation_response(served, probs, asked.format or "png")


async def _answer_style(served: Served, request: Request, limits: Limits, asked: Asked) -> Response:
    max_side = asked.max_side
    if max_side > limits.style_max_side:
        raise ProtocolError(400, f"max_side {max_side} is above this server's ceiling of {limits.style_max_side} "
                                 "pixels for style transfer; ask for less")
    reservation = reservation_of(request)

    async def cost(width: int, height: int) -> None:  # the output's size, known from the header
        try:
            out_width, out_height = style_size(width, height, max_side)
        except ConvzooError as e:
            raise ProtocolError(400, str(e)) from None
        await reservation.grow(served.cost([(1, 3, out_height, out_width)],
                                           encode_bytes_per_value=PNG_BYTES_PER_VALUE), "styling this image")

    image = await read_upload(request, limits, cost)
    styled = await _run_heavy(served, served.model.stylize, image, max_side, True)
    data = await run_in_threadpool(png_bytes, styled)
    if asked.format == "json":
        return JSONResponse({"model": served.name, "task": served.task, "width": styled.width,
                             "height": styled.height, "image_png_base64": base64.b64encode(data).decode()})
    return Response(data, media_type="image/png")


async def _run_heavy(served: Served, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A whole-image run in the model's heavy lane (one at a time); the model refusing the image is a 400."""
    try:
        async with served.heavy:
            return await run_in_threadpool(work, *args, **kwargs)
    except ConvzooError as e:
        raise ProtocolError(400, str(e)) from None


async def _classify(served: Served, image: Image.Image, k: int, reservation: Reservation) -> dict:
    model = served.model
    try:
        x = await run_in_threadpool(model.preprocess, image)
    except ConvzooError as e:
        raise ProtocolError(400, str(e)) from None
    await reservation.grow(served.cost([x.shape]), f"running {served.name!r} on this image")
    results = await run_batch(served, {served.inputs[0].name: x})
    answer = Classification.of_logits(results[served.outputs[0].name][0], model.labels, k)
    return {"model": served.name, "task": served.task, "predictions": answer.to_json()}


def _segmentation_response(served: Served, probs: np.ndarray, format: str) -> Response:
    answer = Segmentation.of_probabilities(probs, served.model.labels)
    classes, labels, fractions = answer.mask, answer.labels, answer.fractions()
    data = png_bytes(mask_image(classes))
    if format == "png":
        return Response(data, media_type="image/png", headers={"X-Convzoo-Fractions": json.dumps(fractions)})
    return JSONResponse({"model": served.name, "task": served.task, "width": int(classes.shape[1]),
                         "height": int(classes.shape[0]), "labels": list(labels), "fractions": fractions,
                         "mask_png_base64": base64.b64encode(data).decode()})


# The service's answer for each task: how its work is costed before decoding, which lane runs it (the
# shared batcher for fixed-size inputs, the heavy lane for whole images), and what goes back.
ANSWERS: dict[str, Callable[[Served, Request, Limits, Asked], Awaitable[Response]]] = {
    "classification": _answer_classification, "segmentation": _answer_segmentation, "style": _answer_style}
