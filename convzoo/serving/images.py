"""Endpoints for people: the catalogue, predict from an uploaded image, download the ONNX file.

Preprocessing comes from the model's own ONNX metadata (``convzoo.runtime``), exactly as in the
demos and in a user's own script. Classification requests share the model's batcher with v2
inference; segmentation and style run at each image's own size, so they run as they come.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image, UnidentifiedImageError

from convzoo.errors import ConvzooError
from convzoo.runtime import softmax
from convzoo.serving.kserve import ERRORS, Limits, lookup, require_ready, run_batch
from convzoo.serving.pool import Pool, Served
from convzoo.serving.tensors import ProtocolError

FORMATS = ["PNG", "JPEG", "WEBP"]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "application/octet-stream")
PALETTE = [0, 0, 0, 255, 255, 255, 230, 25, 75, 60, 180, 75, 255, 225, 25, 0, 130, 200, 245, 130, 48, 145, 30, 180]

PREDICT_BODY = {"requestBody": {"required": True, "description": (
    "A PNG, JPEG or WebP image: as a multipart/form-data upload (field 'image') or as the raw request body."),
    "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}}}},
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES}}}}


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """A decoded PNG, JPEG or WebP; its size is checked before any pixel is decompressed."""
    if not data:
        raise ProtocolError(400, "no image: send a PNG, JPEG or WebP as the body, or as multipart field 'image'")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ProtocolError(415, "the body is not a PNG, JPEG or WebP image; send one of those") from None
    except Image.DecompressionBombError:
        raise ProtocolError(413, f"the image has more pixels than the limit of {max_pixels:,}") from None
    width, height = image.size
    if width * height > max_pixels:  # checked from the header, before any pixel is decompressed
        raise ProtocolError(413, f"the image is {width}x{height} = {width * height:,} pixels, more than the limit "
                                 f"of {max_pixels:,}; scale it down first")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ProtocolError(400, f"the {image.format} image is truncated or corrupt ({e}); send the whole file"
                            ) from None
    if width == 0 or height == 0:
        raise ProtocolError(400, "the image has no pixels")
    return image


async def read_upload(request: Request, max_pixels: int) -> Image.Image:
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
    return await run_in_threadpool(decode_image, data, max_pixels)


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
    manifest = served.stored.manifest if served.stored is not None else {}
    entry = manifest.get("entry", {})
    item = {"name": served.name, "task": served.task, "ready": served.ready, "state": served.state,
            "labels": list(served.model.labels) if served.model is not None else entry.get("labels", []),
            "metrics": manifest.get("metrics", {}), "sha256": manifest.get("sha256"),
            "size_bytes": manifest.get("size_bytes"), "dataset": entry.get("dataset"),
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
                      format: Literal["json", "png"] | None = Query(  # noqa: A002 -- the public parameter name
                          None, description="json or png (default: json for classification, png otherwise)"),
                      max_side: int = Query(512, ge=16, le=2048, description="style: longest side of the output")
                      ) -> Response:
        served = require_ready(lookup(pool, name))
        image = await read_upload(request, limits.max_pixels)
        task = served.task
        if task == "classification":
            if format == "png":
                raise ProtocolError(400, "classification answers JSON; leave out format or use format=json")
            return JSONResponse(await _classify(served, image, k))
        try:
            if task == "segmentation":
                probs = await run_in_threadpool(served.model.segment, image)
                return _segmentation_response(served, probs, format or "png")
            if task == "style":
                styled = await run_in_threadpool(served.model.stylize, image, max_side)
                data = await run_in_threadpool(png_bytes, styled)
                if format == "json":
                    return JSONResponse({"model": served.name, "task": task, "width": styled.width,
                                         "height": styled.height, "image_png_base64": base64.b64encode(data).decode()})
                return Response(data, media_type="image/png")
        except ConvzooError as e:
            raise ProtocolError(400, str(e)) from None
        raise ProtocolError(400, f"model {name!r} has task {task!r}, which this route does not answer")

    @r.head("/v1/models/{name}/onnx", include_in_schema=False)
    @r.get("/v1/models/{name}/onnx", summary="Download the ONNX file (ETag and X-Convzoo-Sha256 carry its sha256; "
           "range requests work)", response_class=FileResponse, responses=ERRORS)
    async def download(name: str, request: Request) -> Response:
        served = lookup(pool, name)
        stored = served.stored or pool.store.get(name)
        try:
            await run_in_threadpool(stored.verify)  # never hand out a file that does not match its manifest
        except ConvzooError as e:
            raise ProtocolError(503, str(e)) from None
        etag = f'"{stored.sha256}"'
        digest = base64.b64encode(bytes.fromhex(stored.sha256)).decode()
        headers = {"ETag": etag, "X-Convzoo-Sha256": stored.sha256, "Repr-Digest": f"sha-256=:{digest}:",
                   "Cache-Control": "no-cache"}
        if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return FileResponse(stored.onnx_path, media_type="application/octet-stream", filename=f"{name}.onnx",
                            headers=headers)

    return r


async def _classify(served: Served, image: Image.Image, k: int) -> dict:
    model = served.model
    try:
        x = await run_in_threadpool(model.preprocess, image)
    except ConvzooError as e:
        raise ProtocolError(400, str(e)) from None
    results = await run_batch(served, {served.inputs[0].name: x})
    probs = softmax(results[served.outputs[0].name].astype(np.float64))[0]
    order = np.argsort(-probs, kind="stable")[:k]
    labels = model.labels
    return {"model": served.name, "task": "classification",
            "predictions": [{"label": labels[i] if i < len(labels) else str(i), "index": int(i),
                             "probability": float(probs[i])} for i in order]}


def _segmentation_response(served: Served, probs: np.ndarray, format: str) -> Response:  # noqa: A002
    classes = probs.argmax(axis=0)
    labels = served.model.labels or [str(i) for i in range(probs.shape[0])]
    counts = np.bincount(classes.ravel(), minlength=probs.shape[0])
    fractions = {labels[i] if i < len(labels) else str(i): float(c / classes.size) for i, c in enumerate(counts)}
    data = png_bytes(mask_image(classes))
    if format == "png":
        return Response(data, media_type="image/png", headers={"X-Convzoo-Fractions": json.dumps(fractions)})
    return JSONResponse({"model": served.name, "task": "segmentation", "width": int(classes.shape[1]),
                         "height": int(classes.shape[0]), "labels": list(labels), "fractions": fractions,
                         "mask_png_base64": base64.b64encode(data).decode()})
