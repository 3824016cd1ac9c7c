"""The KServe v2 protocol through `tritonclient.http`, against a real uvicorn server on 127.0.0.1.

Every result is compared with onnxruntime run in-process on the same input; the batcher is checked
on its own (deterministic merging, order, failure isolation) and through the server (metrics).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

from convzoo.serving import create_app
from convzoo.serving.background import running
from convzoo.serving import tensors
from convzoo.serving.batching import Batcher
from convzoo.serving.tensors import (DecodedRequest, OutputRequest, ProtocolError, TensorSpec, classify,
                                     decode_request, deserialize_bytes, encode_response, exact_sources,
                                     serialize_bytes, split_body)
from convzoo.runtime import load_model

MAX_BATCH = 8


@pytest.fixture(scope="module")
def server(tiny_store):
    app = create_app(tiny_store, max_batch=MAX_BATCH, batch_delay_ms=20)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.removeprefix("http://"), concurrency=4, network_timeout=30)
    yield c
    c.close()


def reference(store, name: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime in this process, its own session: what the server must answer."""
    session = ort.InferenceSession(str(store.get(name).onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def images(n: int, shape=(1, 28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def infer(client, name, x, datatype="FP32", binary_in=True, outputs=None, **kwargs):
    tensor = httpclient.InferInput("image", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    return client.infer(name, [tensor], outputs=outputs, **kwargs)


# ------------------------------------------------------------------------------------------------
# health and metadata


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "convzoo"
    assert {"binary_tensor_data", "classification"} <= set(meta["extensions"])


def test_model_metadata_marks_dynamic_dimensions(client, tiny_store):
    meta = client.get_model_metadata("tiny-fashion")
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["parameters"]["sha256"] == tiny_store.get("tiny-fashion").sha256
    seg = client.get_model_metadata("tiny-membranes", model_version="1")
    assert seg["inputs"][0]["shape"] == [-1, 1, -1, -1]
    assert client.is_model_ready("tiny-style")
    assert client.is_model_ready("tiny-style", model_version="1")
    assert not client.is_model_ready("tiny-style", model_version="2")
    assert not client.is_model_ready("no-such-model")


# ------------------------------------------------------------------------------------------------
# inference: binary, JSON, batches, datatypes, classification


def test_binary_inference_equals_in_process_onnxruntime(client, tiny_store):
    x = images(3)
    result = infer(client, "tiny-fashion", x, request_id="req-7")  # tritonclient's default: binary in and out
    assert result.get_response()["id"] == "req-7"
    assert result.get_output("logits")["parameters"]["binary_data_size"] == 3 * 10 * 4
    np.testing.assert_allclose(result.as_numpy("logits"), reference(tiny_store, "tiny-fashion", x), rtol=1e-5, atol=1e-5)


def test_json_inference_equals_in_process_onnxruntime(client, tiny_store):
    x = images(2, (3, 32, 32), seed=1)
    result = infer(client, "tiny-cifar", x, binary_in=False,
                   outputs=[httpclient.InferRequestedOutput("logits", binary_data=False)])
    output = result.get_output("logits")
    assert "data" in output and "parameters" not in output  # really JSON on the way back
    np.testing.assert_allclose(result.as_numpy("logits"), reference(tiny_store, "tiny-cifar", x), rtol=1e-5, atol=1e-5)


def test_full_batch_and_dynamic_spatial_size(client, tiny_store):
    x = images(MAX_BATCH, seed=2)
    np.testing.assert_allclose(infer(client, "tiny-fashion", x).as_numpy("logits"),
                               reference(tiny_store, "tiny-fashion", x), rtol=1e-5, atol=1e-5)
    seg = images(2, (1, 20, 36), seed=3)
    out = infer(client, "tiny-membranes", seg).as_numpy("mask_logits")
    assert out.shape == (2, 2, 20, 36)
    np.testing.assert_allclose(out, reference(tiny_store, "tiny-membranes", seg), rtol=1e-5, atol=1e-5)


def test_fp16_and_uint8_inputs_convert_exactly(client, tiny_store):
    x16 = images(2, seed=4).astype(np.float16)
    out = infer(client, "tiny-fashion", x16, datatype="FP16").as_numpy("logits")
    np.testing.assert_allclose(out, reference(tiny_store, "tiny-fashion", x16.astype(np.float32)), rtol=1e-5, atol=1e-5)
    pixels = np.random.default_rng(5).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    out = infer(client, "tiny-cifar", pixels, datatype="UINT8").as_numpy("logits")
    np.testing.assert_allclose(out, reference(tiny_store, "tiny-cifar", pixels.astype(np.float32)), rtol=1e-5, atol=1e-4)


def test_int64_input_is_refused_with_the_datatypes_that_work(client):
    with pytest.raises(InferenceServerException) as error:
        infer(client, "tiny-fashion", np.ones((1, 1, 28, 28), np.int64), datatype="INT64")
    assert error.value.status() == "400"
    assert "expected datatype FP32" in error.value.message() and "got INT64" in error.value.message()


@pytest.mark.parametrize("binary", [True, False])
def test_classification_extension_returns_score_index_label(client, tiny_store, binary):
    x = images(2, seed=6)
    result = infer(client, "tiny-fashion", x,
                   outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary, class_count=3)])
    top = result.as_numpy("logits")
    assert top.shape == (2, 3)
    logits = reference(tiny_store, "tiny-fashion", x)
    labels = load_model("tiny-fashion", tiny_store).labels
    for row, expected in zip(top, logits):
        order = np.argsort(-expected)[:3]
        parsed = [(item.decode() if isinstance(item, bytes) else item).split(":", 2) for item in row]
        assert [int(index) for _, index, _ in parsed] == list(order)
        assert [label for _, _, label in parsed] == [labels[i] for i in order]
        np.testing.assert_allclose([float(score) for score, _, _ in parsed], expected[order], atol=1e-5)


def test_requested_outputs_only(client):
    result = infer(client, "tiny-fashion", images(1), outputs=[httpclient.InferRequestedOutput("logits")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["logits"]


# ------------------------------------------------------------------------------------------------
# dynamic batching through the server: it batches, and every client gets its own answer


def test_concurrent_requests_are_batched_and_answered_in_order(server, tiny_store):
    clients, per_client = 12, 4
    xs = [images(1 + i % 2, seed=100 + i) for i in range(clients * per_client)]  # batches of 1 and 2 rows
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients)

    def worker(k: int) -> None:
        c = httpclient.InferenceServerClient(server.removeprefix("http://"), network_timeout=30)
        try:
            barrier.wait()
            for j in range(per_client):
                i = k * per_client + j
                answers[i] = infer(c, "tiny-fashion", xs[i]).as_numpy("logits")
        except BaseException as e:  # noqa: BLE001 -- reported by the assertion below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i, x in enumerate(xs):
        np.testing.assert_allclose(answers[i], reference(tiny_store, "tiny-fashion", x), rtol=1e-5, atol=1e-5)
    metrics = httpclient_get(server, "/metrics")
    merged = histogram(metrics, "convzoo_batch_requests", "tiny-fashion")
    assert merged["count"] < merged["requests"], "every request ran alone: nothing was batched"
    assert histogram(metrics, "convzoo_batch_size", "tiny-fashion")["max_bucket_over_1"]


def httpclient_get(url: str, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=10) as response:
        return response.read().decode()


def histogram(text: str, metric: str, model: str) -> dict:
    """count (batches run) and sum (requests or rows in them) of a Prometheus histogram."""
    count = float(re.search(rf'^{metric}_count{{model="{model}"}} (\S+)$', text, re.M).group(1))
    total = float(re.search(rf'^{metric}_sum{{model="{model}"}} (\S+)$', text, re.M).group(1))
    le1 = float(re.search(rf'^{metric}_bucket{{le="1.0",model="{model}"}} (\S+)$', text, re.M).group(1))
    return {"count": count, "requests": total, "max_bucket_over_1": le1 < count}


# ------------------------------------------------------------------------------------------------
# the batcher on its own


def _recording_run(calls):
    def run(feeds):
        x = feeds["x"]
        calls.append(x.shape[0])
        if np.any(x == -1):
            raise RuntimeError("poisoned input")
        return {"y": x * 2}
    return run


@pytest.mark.unit
def test_batcher_merges_concurrent_requests_and_keeps_order():
    calls: list[int] = []
    batcher = Batcher("m", _recording_run(calls), max_batch=8, delay_s=0.05)

    async def main():
        inputs = [np.full((1, 3), i, np.float32) for i in range(6)]
        outs = await asyncio.gather(*(batcher.submit({"x": x}) for x in inputs))
        await batcher.close()
        return inputs, outs

    inputs, outs = asyncio.run(main())
    assert calls == [6]  # one onnxruntime call for all six
    for x, out in zip(inputs, outs):
        np.testing.assert_array_equal(out["y"], x * 2)


@pytest.mark.unit
def test_batcher_respects_max_batch_and_shapes():
    calls: list[int] = []
    batcher = Batcher("m", _recording_run(calls), max_batch=4, delay_s=0.05)

    async def main():
        same = [batcher.submit({"x": np.full((2, 3), i, np.float32)}) for i in range(3)]
        other = batcher.submit({"x": np.zeros((1, 5), np.float32)})  # another trailing shape never merges
        outs = await asyncio.gather(*same, other)
        await batcher.close()
        return outs

    outs = asyncio.run(main())
    assert sorted(calls) == [1, 2, 4]
    assert outs[3]["y"].shape == (1, 5)
    for i in range(3):
        np.testing.assert_array_equal(outs[i]["y"], np.full((2, 3), 2 * i))


@pytest.mark.unit
def test_a_failing_request_fails_alone():
    calls: list[int] = []
    batcher = Batcher("m", _recording_run(calls), max_batch=8, delay_s=0.05)

    async def main():
        inputs = [np.full((1, 2), v, np.float32) for v in (1, -1, 3)]
        outs = await asyncio.gather(*(batcher.submit({"x": x}) for x in inputs), return_exceptions=True)
        after = await batcher.submit({"x": np.ones((1, 2), np.float32)})  # the worker lives on
        await batcher.close()
        return outs, after

    outs, after = asyncio.run(main())
    assert isinstance(outs[1], RuntimeError) and "poisoned" in str(outs[1])
    np.testing.assert_array_equal(outs[0]["y"], [[2, 2]])
    np.testing.assert_array_equal(outs[2]["y"], [[6, 6]])
    np.testing.assert_array_equal(after["y"], [[2, 2]])
    assert calls[0] == 3  # tried merged first, then one by one


@pytest.mark.unit
def test_delay_zero_turns_batching_off():
    calls: list[int] = []
    batcher = Batcher("m", _recording_run(calls), max_batch=8, delay_s=0)

    async def main():
        await asyncio.gather(*(batcher.submit({"x": np.ones((1, 2), np.float32)}) for _ in range(5)))

    asyncio.run(main())
    assert calls == [1, 1, 1, 1, 1]


# ------------------------------------------------------------------------------------------------
# the codec on its own


@pytest.mark.unit
def test_bytes_tensor_round_trip():
    items = [b"", b"a", "é:3:Coat".encode(), bytes(range(256))]
    assert deserialize_bytes(serialize_bytes(items)) == items


@pytest.mark.unit
def test_exact_sources_are_lossless():
    assert exact_sources("FP32")[0] == "FP32"
    assert {"FP16", "UINT8", "INT8", "INT16", "UINT16"} <= set(exact_sources("FP32"))
    assert "INT64" not in exact_sources("FP32") and "FP64" not in exact_sources("FP32")
    assert exact_sources("INT64") == ["INT64", "UINT8", "UINT16", "UINT32", "INT8", "INT16", "INT32"]


@pytest.mark.unit
def test_decode_two_inputs_and_encode_binary_response():
    specs = [TensorSpec("a", "INT64", (-1, 2)), TensorSpec("b", "FP16", (-1, 3))]
    outs = [TensorSpec("y", "FP32", (-1, 4))]
    b = np.arange(6, dtype=np.float16).reshape(2, 3)
    payload = {"inputs": [{"name": "a", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]},
                          {"name": "b", "shape": [2, 3], "datatype": "FP16",
                           "parameters": {"binary_data_size": b.nbytes}}],
               "parameters": {"binary_data_output": True}}
    request = decode_request(payload, b.tobytes(), specs, outs, max_batch=4)
    np.testing.assert_array_equal(request.inputs["a"], [[1, 2], [3, 4]])
    assert request.inputs["a"].dtype == np.int64
    np.testing.assert_array_equal(request.inputs["b"], b)
    assert request.outputs == [OutputRequest("y", True, 0)] and request.batch == 2
    y = np.arange(8, dtype=np.float32).reshape(2, 4)
    body, header = encode_response("m", request, {"y": y})
    meta, binary = split_body(body, str(header))
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 32
    np.testing.assert_array_equal(np.frombuffer(binary, np.float32).reshape(2, 4), y)
    with pytest.raises(Exception, match="missing input 'b'"):
        decode_request({"inputs": payload["inputs"][:1]}, b"", specs, outs, max_batch=4)


def test_served_sessions_do_not_spin_unless_asked(tiny_store):
    """Idle onnxruntime threads that busy-wait take the CPU the requests need on a small machine
    (benchmarks/README.md); the service turns spinning off, ``--spin`` turns it back on."""
    def spinning(app) -> str:
        app.state.pool.load_all()
        options = app.state.pool.get("tiny-fashion").model.session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(create_app(tiny_store, ["tiny-fashion"], load_in_background=False)) == "0"
    with pytest.raises(Exception, match="does not have configuration"):  # onnxruntime's default: spin
        spinning(create_app(tiny_store, ["tiny-fashion"], spin=True, load_in_background=False))


# the fast JSON path (orjson) must give what the exact path (the standard library, refusing repeated keys) gives

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20 + 1, 10**20 - 1) | st.integers(2**63 - 9, 2**64 + 9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=25)


def exact(text: bytes):
    def unique(pairs):
        assert len({k for k, _ in pairs}) == len(pairs), "repeated key"
        return dict(pairs)
    return json.loads(text, object_pairs_hook=unique)


def parsed(text: bytes):
    payload, _ = split_body(text, None)
    if isinstance(payload, dict):
        del payload[tensors._HAS_BOOLEANS]  # the parse's own note, for the checks that follow
    return payload


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, compact=st.booleans(), ascii_only=st.booleans())
def test_fast_json_parse_equals_the_exact_parse(value, compact, ascii_only):
    text = json.dumps(value, separators=(",", ":") if compact else (", ", " : "), ensure_ascii=ascii_only).encode()
    if not text.strip(b'"'):
        return
    assert parsed(text) == exact(text)


@pytest.mark.unit
@settings(max_examples=100, deadline=None)
@given(digits=st.integers(21, 6000), where=st.sampled_from(["data", "shape", "id", "parameter"]))
def test_an_integer_past_64_bits_is_refused_before_int_reads_it(digits, where):
    """4,300 digits would make ``int()`` raise (a 500 before); 21 are already more than any datatype holds."""
    big = "9" * digits
    text = {"data": '{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [%s]}]}' % big,
            "shape": '{"inputs": [{"name": "x", "shape": [%s], "datatype": "FP32", "data": [1]}]}' % big,
            "id": '{"id": %s, "inputs": []}' % big,
            "parameter": '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], '
                         '"parameters": {"binary_data_size": %s}}]}' % big}[where].encode()
    with pytest.raises(ProtocolError, match=f"integer of {digits:,} digits") as refused:
        split_body(text, None)
    assert refused.value.status == 400


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(st.text(max_size=4), JSON_VALUES, min_size=1, max_size=5), data=st.data())
def test_a_repeated_key_is_refused_wherever_it_is(value, data):
    """A key given twice, at the top, inside a tensor's list of dicts or inside a number list, is always
    refused, never settled to its last value (which orjson alone would do)."""
    key = data.draw(st.sampled_from(sorted(value)))
    inner = json.dumps(value)[1:-1]
    twice = "{" + json.dumps(key) + ": 1, " + inner + "}"
    where = data.draw(st.sampled_from(["top", "list of objects", "after numbers"]))
    text = {"top": twice, "list of objects": '{"inputs": [' + twice + "]}",
            "after numbers": '{"inputs": [{"name": "x", "data": [1.5, 2.5, ' + twice + "]}]}"}[where].encode()
    with pytest.raises(ProtocolError, match="appears twice"):
        split_body(text, None)


@pytest.mark.unit
def test_json_the_fast_parser_refuses_takes_the_exact_path():
    assert parsed(b'{"inputs": [NaN, Infinity, -Infinity]}')["inputs"][0] != 0  # the standard library's extension
    assert parsed(b'{"n": 12345678901234567890}')["n"] == 12345678901234567890  # past int64, still 20 digits
    assert parsed(b'{"a\\"": 1, "b": "\\u00e9"}') == {'a"': 1, "b": "é"}
    with pytest.raises(ProtocolError, match="malformed JSON at line 1 column 7"):
        split_body(b'{"a": }', None)


@pytest.mark.unit
def test_outputs_encode_finite_values_exactly_and_non_finite_as_triton_does():
    request = DecodedRequest(None, {}, [OutputRequest("y", False, 0)], 1)
    y = np.random.default_rng(0).normal(size=(1, 10)).astype(np.float32)
    body, _ = encode_response("m", request, {"y": y})
    np.testing.assert_array_equal(np.asarray(json.loads(body)["outputs"][0]["data"], np.float32), y.ravel())
    y[0, 3], y[0, 4] = np.nan, np.inf
    body, _ = encode_response("m", request, {"y": y})
    assert b"NaN" in body and b"Infinity" in body
    out = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32)
    assert np.isnan(out[3]) and out[4] == np.inf


@pytest.mark.unit
def test_classify_without_labels_uses_index_only():
    out = classify(np.array([[0.1, 0.9, 0.5]], np.float32), 2, labels=())
    assert [item.decode() for item in out[0]] == ["0.900000:1", "0.500000:2"]
    empty = DecodedRequest(None, {}, [OutputRequest("y", False, 5)], 1)
    body, header = encode_response("m", empty, {"y": np.array([[1.0, 2.0]], np.float32)}, labels=["a", "b"])
    assert header is None and b'"shape":[1,2]' in body  # k larger than the classes: all of them
