"""The endpoints for people: catalogue, predict from real PNG/JPEG/WebP uploads, ONNX download with sha256."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from convzoo.runtime import OnnxModel
from convzoo.serving import create_app
from convzoo.serving.background import running


@pytest.fixture(scope="module")
def http(tiny_store):
    with running(create_app(tiny_store, batch_delay_ms=2)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def photo(size=(40, 30), mode="RGB", seed=0) -> Image.Image:
    """A smooth picture with structure (gradients and a disc), so JPEG keeps it recognisable."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    disc = ((xx - w * rng.uniform(0.3, 0.7)) ** 2 + (yy - h / 2) ** 2) < (min(w, h) / 3) ** 2
    rgb = np.stack([xx * 255 / w, yy * 255 / h, disc * 255.0], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb)
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def fresh(tiny_store, name: str) -> OnnxModel:
    return OnnxModel(tiny_store.get(name).onnx_path)  # its own session: the reference


def test_catalogue_lists_every_model_with_task_labels_and_sha256(http, tiny_store):
    models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny-fashion", "tiny-cifar", "tiny-membranes", "tiny-style"}
    assert models["tiny-fashion"]["task"] == "classification" and len(models["tiny-fashion"]["labels"]) == 10
    assert models["tiny-membranes"]["task"] == "segmentation" and models["tiny-style"]["task"] == "style"
    for name, model in models.items():
        assert model["ready"] and model["sha256"] == tiny_store.get(name).sha256
        assert model["links"]["onnx"] == f"/v1/models/{name}/onnx"
    assert http.get("/v1/models/tiny-cifar").json()["preprocess"]["size"] == [32, 32]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_classify_upload_matches_in_process_top_k(http, tiny_store, fmt):
    data = encoded(photo((48, 40), seed=1), fmt)
    response = http.post("/v1/models/tiny-cifar/predict", params={"k": 3},
                         files={"image": (f"photo.{fmt.lower()}", data, f"image/{fmt.lower()}")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "classification" and len(body["predictions"]) == 3
    expected = fresh(tiny_store, "tiny-cifar").top_k(Image.open(io.BytesIO(data)), k=3)
    assert [p["label"] for p in body["predictions"]] == list(expected)
    np.testing.assert_allclose([p["probability"] for p in body["predictions"]], list(expected.values()), rtol=1e-5)


def test_classify_raw_body_grayscale_model(http, tiny_store):
    data = encoded(photo((28, 28), seed=2), "PNG")  # RGB upload, gray model: converted by the model's metadata
    body = http.post("/v1/models/tiny-fashion/predict", content=data, headers={"Content-Type": "image/png"}).json()
    expected = fresh(tiny_store, "tiny-fashion").top_k(Image.open(io.BytesIO(data)), k=5)
    assert [p["label"] for p in body["predictions"]] == list(expected)
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6


def test_transparent_png_is_flattened_like_the_demos(http, tiny_store):
    rgba = photo((28, 28), seed=3).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 100))
    data = encoded(rgba, "PNG")
    body = http.post("/v1/models/tiny-fashion/predict", content=data).json()
    expected = fresh(tiny_store, "tiny-fashion").top_k(Image.open(io.BytesIO(data)), k=5)
    assert [p["label"] for p in body["predictions"]] == list(expected)


def test_segmentation_mask_png_matches_in_process(http, tiny_store):
    image = photo((37, 23), mode="L", seed=4)
    response = http.post("/v1/models/tiny-membranes/predict", content=encoded(image, "PNG"))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    mask = Image.open(io.BytesIO(response.content))
    assert mask.size == image.size and mask.mode == "P"
    expected = fresh(tiny_store, "tiny-membranes").segment(image).argmax(axis=0)
    np.testing.assert_array_equal(np.asarray(mask), expected)
    fractions = json.loads(response.headers["x-convzoo-fractions"])
    assert fractions["cell"] == pytest.approx(float((expected == 1).mean()))


def test_segmentation_json_has_class_fractions_and_the_mask(http, tiny_store):
    image = photo((32, 32), mode="L", seed=5)
    body = http.post("/v1/models/tiny-membranes/predict", params={"format": "json"}, content=encoded(image, "PNG")).json()
    assert body["labels"] == ["membrane", "cell"] and (body["width"], body["height"]) == (32, 32)
    assert sum(body["fractions"].values()) == pytest.approx(1.0)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"]))))
    assert body["fractions"]["membrane"] == pytest.approx(float((mask == 0).mean()))


def test_style_returns_the_stylised_png(http, tiny_store):
    image = photo((50, 30), seed=6)
    response = http.post("/v1/models/tiny-style/predict", files={"image": ("a.jpg", encoded(image, "JPEG"))})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    styled = np.asarray(Image.open(io.BytesIO(response.content)))
    sent = Image.open(io.BytesIO(encoded(image, "JPEG")))
    np.testing.assert_array_equal(styled, np.asarray(fresh(tiny_store, "tiny-style").stylize(sent)))
    np.testing.assert_array_equal(styled, 255 - np.asarray(sent.convert("RGB")))  # the tiny style inverts


def test_style_respects_max_side(http):
    response = http.post("/v1/models/tiny-style/predict", params={"max_side": 40, "format": "json"},
                         content=encoded(photo((80, 40)), "PNG"))
    assert (response.json()["width"], response.json()["height"]) == (40, 20)


def test_a_strip_that_scaling_would_thin_below_the_style_minimum_is_refused_before_decoding(http):
    """16x40000 passes the 16-pixel check, but brought to 512 pixels it would be 512x0 (a 500 before)."""
    response = http.post("/v1/models/tiny-style/predict", content=encoded(Image.new("RGB", (40000, 16)), "PNG"))
    assert response.status_code == 400, response.text
    assert "at least 16 pixels on each side" in response.json()["error"]


def test_download_matches_sha256_with_etag_and_ranges(http, tiny_store):
    stored = tiny_store.get("tiny-fashion")
    response = http.get("/v1/models/tiny-fashion/onnx")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stored.sha256
    assert response.headers["etag"] == f'"{stored.sha256}"'
    assert response.headers["x-convzoo-sha256"] == stored.sha256
    assert base64.b64decode(response.headers["repr-digest"].split(":")[1]) == bytes.fromhex(stored.sha256)
    assert 'filename="tiny-fashion.onnx"' in response.headers["content-disposition"]
    part = http.get("/v1/models/tiny-fashion/onnx", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == response.content[10:100]
    assert http.get("/v1/models/tiny-fashion/onnx", headers={"If-None-Match": f'"{stored.sha256}"'}).status_code == 304
    head = http.head("/v1/models/tiny-fashion/onnx")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(response.content)


def test_openapi_page_documents_the_people_routes(http):
    schema = http.get("/openapi.json").json()
    predict = schema["paths"]["/v1/models/{name}/predict"]["post"]
    assert {"multipart/form-data", "image/png", "image/jpeg", "image/webp"} <= set(predict["requestBody"]["content"])
    assert "/v1/models/{name}/onnx" in schema["paths"] and "/v1/models" in schema["paths"]
    assert http.get("/docs").status_code == 200
