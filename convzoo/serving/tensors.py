"""The KServe v2 / Open Inference Protocol tensor codec: JSON tensors and the binary tensor data extension.

Pure functions on bytes and numpy arrays, no web framework, so the wire format is tested on its own.
References: the Open Inference Protocol REST spec (kserve/open-inference-protocol) and Triton's
binary tensor data and classification extensions, which ``tritonclient.http`` speaks.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from convzoo.bounds import parse_count
from convzoo.errors import BadInputError


class ProtocolError(Exception):
    """A request the service answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def forget(error: BaseException) -> None:
    """Drop an answered error's traceback and context: they hold the frames of the request (its body, its
    inflated pieces, its tensors) in a reference cycle that only the garbage collector's next pass, not the
    end of the request, would free."""
    error.__traceback__ = error.__context__ = error.__cause__ = None


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(400, message)


# ----------------------------------------------------------------------------------------------
# datatypes

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
ORT_TYPES = {"tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
             "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
             "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
             "tensor(string)": "BYTES"}


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    for name, dtype in DATATYPES.items():
        if name != "BYTES" and array.dtype == dtype.newbyteorder("="):
            return name
    raise TypeError(f"no v2 datatype for numpy {array.dtype}")


def exact_sources(target: str) -> list[str]:
    """Datatypes that convert to ``target`` without losing anything (FP16 or UINT8 into an FP32 input)."""
    return list(_EXACT_SOURCES[target])


def _exact_sources(target: str) -> tuple[str, ...]:
    if target == "BYTES":
        return ("BYTES",)
    goal = DATATYPES[target]
    return (target,) + tuple(name for name, dtype in DATATYPES.items()
                             if name not in (target, "BYTES", "BOOL") and np.can_cast(dtype, goal, "safe"))


_EXACT_SOURCES = {target: _exact_sources(target) for target in DATATYPES}  # asked on every request


# ----------------------------------------------------------------------------------------------
# the request, as the protocol defines it (also the schema the OpenAPI page shows)


class TensorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(None, description="row-major values, flat or nested; omit when sent as binary")


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    parameters: dict[str, Any] | None = Field(
        None, description='{"binary_data": true} for a binary output; {"classification": k} for top-k strings')


class InferRequestBody(BaseModel):
    """A KServe v2 inference request (JSON part)."""

    model_config = ConfigDict(extra="forbid")
    id: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class TensorOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[TensorOutput]


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the protocol shows it: -1 marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class OutputRequest:
    name: str
    binary: bool
    classification: int = 0


@dataclass
class DecodedRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[OutputRequest]
    batch: int
    parameters: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# decoding


INFLATE_CHUNK = 1 << 20


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` gzip/deflate (tritonclient's request compression), never past ``limit``.

    Inflated a chunk at a time (zlib lets go of the interpreter lock while it works), so a thread doing
    this never holds up the event loop for long, and a bomb stops at ``limit`` + one chunk.
    """
    if not encoding or encoding.lower() == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding.lower())
    if wbits is None:
        raise ProtocolError(415, f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none")
    inflater = zlib.decompressobj(wbits)
    chunks, size, pending = [], 0, body
    try:
        while pending and size <= limit:
            chunk = inflater.decompress(pending, INFLATE_CHUNK)
            chunks.append(chunk)
            size += len(chunk)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error as e:
        chunks.clear()
        raise bad_request(f"the body is not valid {encoding} data ({e})") from None
    if size > limit:
        # let go of the inflated pieces now: the raised error's traceback keeps this frame alive until the
        # garbage collector's next pass, and the pieces with it (65 MB a bomb, measured in benchmarks/hostile.py)
        chunks.clear()
        raise ProtocolError(413, f"the request body inflates to more than {limit:,} bytes, the limit; send less")
    return b"".join(chunks)


def json_length(header_length: str) -> int:
    """``Inference-Header-Content-Length`` as a number: ASCII digits, at most 12 of them."""
    try:
        return parse_count(header_length, "Inference-Header-Content-Length", max_digits=12)
    except BadInputError as e:
        raise ProtocolError(e.status, f"{e}; it gives the byte length of the JSON part") from None


def split_body(body: bytes, header_length: str | None, max_json: int = 4 * 1024 * 1024,
               max_values: int = 1 << 19) -> tuple[Any, bytes]:
    """The JSON header and the binary part, following ``Inference-Header-Content-Length``.

    The JSON part is bounded in bytes and in numbers (a cheap count of separators) before it is
    parsed, since the parse holds the interpreter lock for as long as it runs.
    """
    if header_length is None:
        json_part, binary = body, b""
    else:
        n = json_length(header_length)
        if not 0 < n <= len(body):
            raise bad_request(f"Inference-Header-Content-Length is {n}, but the body has {len(body)} bytes; "
                              "expected the length of the JSON header that starts the body")
        json_part, binary = body[:n], body[n:]
    if len(json_part) > max_json:
        raise ProtocolError(413, f"the JSON part of the request is {len(json_part):,} bytes, more than this server's "
                                 f"limit of {max_json:,}; send large tensors with the binary tensor extension")
    if not json_part.strip():
        raise bad_request("the body is empty: expected a KServe v2 inference request "
                          '({"inputs": [{"name", "shape", "datatype", "data"}]})')
    if json_part.count(b",") >= max_values:
        raise ProtocolError(413, f"the JSON part holds more than {max_values:,} values, this server's limit for "
                                 "JSON tensors; send large tensors with the binary tensor extension")
    payload = _fast_loads(json_part)
    if payload is _UNSURE:
        payload = _exact_loads(json_part, header_length)
    if isinstance(payload, dict):  # only where the text has true or false is it worth looking among numbers
        payload[_HAS_BOOLEANS] = b"true" in json_part or b"false" in json_part
    return payload, binary


_HAS_BOOLEANS = "\x00convzoo-has-booleans"
_UNSURE = object()
_KEY = re.compile(rb'"\s*:')  # outside strings, only a key's closing quote is followed by a colon
# digits to 0, the decimal point kept, all else to ","; an integer orjson cannot hold in 64 bits (and turns
# into a float) is then ",0000000000000000000...": 19 digits or more, not after a point
_NUMBER_SHAPES = bytes(48 if 48 <= i <= 57 else i if i == 46 else 44 for i in range(256))  # "0", ".", ","
_LONG_INTEGER = b"," + b"0" * 19


def _fast_loads(json_part: bytes) -> Any:
    """orjson's parse (about 9x the standard library's on number arrays), when it is the parse the exact
    path would give: ``_UNSURE`` where orjson refuses the text (the exact path then says why), where the
    text has escapes or a run of 19 digits (perhaps an integer past 64 bits, which orjson makes a float),
    or where it holds a key the parsed objects do not (a key given twice, which orjson would settle
    silently, or one inside a data list, which the checks refuse anyway)."""
    if b"\\" in json_part or _LONG_INTEGER in b"," + json_part.translate(_NUMBER_SHAPES):
        return _UNSURE
    try:
        payload = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        return _UNSURE
    if _count_keys(payload) != len(_KEY.findall(json_part)):
        return _UNSURE
    return payload


def _count_keys(value: Any) -> int:
    """Keys of the objects in ``value``, not looking inside lists that start with a number or a string
    (tensor data: a key hidden further along one makes the counts differ, and the exact path decides)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list) and item and isinstance(item[0], (dict, list)):
            stack.extend(item)
    return count


def _exact_loads(json_part: bytes, header_length: str | None) -> Any:
    """The standard library's parse, refusing a key given twice, with an error that says where."""
    try:
        return json.loads(json_part, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except UnicodeDecodeError:
        raise bad_request("the JSON header is not UTF-8; binary tensors need the Inference-Header-Content-Length "
                          "header giving the length of the JSON part") from None
    except json.JSONDecodeError as e:
        hint = (" (binary tensors need the Inference-Header-Content-Length header)"
                if header_length is None and "Extra data" in e.msg else "")
        raise bad_request(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}{hint}") from None
    except RecursionError:
        raise bad_request("the JSON is nested too deeply") from None


MAX_INT_DIGITS = 20  # every integer a v2 request can mean fits in 64 bits: 20 digits (and a sign)


def _bounded_int(text: str) -> int:
    """A JSON integer, refused past 20 digits before ``int()`` meets it (Python refuses 4,300 digits with a
    ValueError, and takes quadratic time on the way)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise bad_request(f"the JSON holds an integer of {len(text.lstrip('-')):,} digits; integers in a request "
                          f"have at most {MAX_INT_DIGITS} (64 bits)")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused, not silently resolved to its last value."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise bad_request(f"the key {twice!r} appears twice in one JSON object; give each key once")
    return out


def describe_validation(error: ValidationError, what: str) -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    more = f" (and {error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return f"not a valid {what}: {'; '.join(problems)}{more}"


def _param(params: Mapping[str, Any] | None, key: str, kind: type, where: str) -> Any:
    value = (params or {}).get(key)
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad_request(f"{where} parameter {key!r} must be an integer, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise bad_request(f"{where} parameter {key!r} must be true or false, got {value!r}")
    return value


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


MAX_DIMENSION = 1 << 31


def check_shape(spec: TensorSpec, shape: Sequence[int], max_batch: int, size_multiple: int, max_pixels: int,
                min_side: int = 1) -> None:
    expected = _shape_text(spec.shape)
    if len(shape) != len(spec.shape) or any(want != -1 and want != got for want, got in zip(spec.shape[1:], shape[1:])):
        raise bad_request(f"input {spec.name!r}: expected shape {expected}, got {_shape_text(shape)}")
    if any(d < 1 for d in shape):
        raise bad_request(f"input {spec.name!r}: every dimension must be at least 1, got {_shape_text(shape)}")
    if any(d >= MAX_DIMENSION for d in shape):
        raise ProtocolError(413, f"input {spec.name!r}: shape {_shape_text(shape)} has a dimension of 2**31 or more; "
                                 "send a smaller input")
    if spec.shape[0] == -1 and shape[0] > max_batch:
        raise bad_request(f"input {spec.name!r}: a batch of {shape[0]} is larger than this server's limit of "
                          f"{max_batch}; split it into smaller requests")
    if spec.shape[0] != -1 and shape[0] != spec.shape[0]:
        raise bad_request(f"input {spec.name!r}: expected shape {expected}, got {_shape_text(shape)}")
    dynamic = [i for i, want in enumerate(spec.shape) if want == -1 and i > 0]
    if dynamic:
        pixels = math.prod(shape[i] for i in dynamic[-2:])  # Python integers: no overflow
        if pixels > max_pixels:
            raise ProtocolError(413, f"input {spec.name!r}: {pixels:,} values per channel is more than the limit of "
                                     f"{max_pixels:,}; send a smaller input")
        if size_multiple > 1 and any(shape[i] % size_multiple for i in dynamic):
            raise bad_request(f"input {spec.name!r}: dimensions {[shape[i] for i in dynamic]} must be multiples of "
                              f"{size_multiple} for this model; pad the input")
        if any(shape[i] < min_side for i in dynamic[-2:]):
            raise bad_request(f"input {spec.name!r}: this model needs at least {min_side} pixels on each side, got "
                              f"{_shape_text(shape)}")


def _json_array(tensor: TensorInput, datatype: str, count: int, may_hold_booleans: bool = True) -> np.ndarray:
    where = f"input {tensor.name!r}"
    if datatype == "BYTES":
        flat = _flatten(tensor.data, where)
        if not all(isinstance(v, str) for v in flat):
            raise bad_request(f"{where}: BYTES data must be strings")
        if len(flat) != count:
            raise bad_request(f"{where}: shape {_shape_text(tensor.shape)} needs {count} values, got {len(flat)}")
        return np.array([v.encode() for v in flat], dtype=object)
    try:
        array = np.asarray(tensor.data)
    except (ValueError, TypeError):
        raise bad_request(f"{where}: data must be a flat or evenly nested list of numbers") from None
    wanted_kinds = {"BOOL": "b"}.get(datatype, "iu" if datatype.startswith(("INT", "UINT")) else "iuf")
    if array.size and array.dtype.kind not in wanted_kinds:
        kind = {"b": "true/false", "iu": "integers", "iuf": "numbers"}[wanted_kinds]
        raise bad_request(f"{where}: {datatype} data must be {kind}, got {_describe_kind(array)}")
    if array.size != count:
        raise bad_request(f"{where}: shape {_shape_text(tensor.shape)} needs {count} values, got {array.size}")
    if datatype != "BOOL" and may_hold_booleans and any(type(v) is bool for v in _flatten(tensor.data, where)):
        raise bad_request(f"{where}: {datatype} data must be numbers, got true/false among them")
    dtype = DATATYPES[datatype]
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise bad_request(f"{where}: values must lie in {info.min}..{info.max} for {datatype}")
    return _exact_cast(array, dtype, where, datatype).reshape(tensor.shape)


def _exact_cast(array: np.ndarray, dtype: np.dtype, where: str, datatype: str) -> np.ndarray:
    """``array`` as ``dtype``; a finite value that would become infinite (1e10 in FP16) is refused."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(dtype)
    if dtype.kind == "f" and array.size:  # integers too: 70000 is as far past FP16's range as 70000.0
        overflowed = ~np.isfinite(out) & (np.isfinite(array) if array.dtype.kind == "f" else True)
        if overflowed.any():
            limit = float(np.finfo(dtype).max)
            raise bad_request(f"{where}: {float(array[overflowed][0]):g} is outside the range of {datatype} "
                              f"(±{limit:g})")
    return out


def _flatten(data: Any, where: str) -> list[Any]:
    out: list[Any] = []
    stack = [iter([data])]
    while stack:  # iterative: a deeply nested list must not blow the stack
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _describe_kind(array: np.ndarray) -> str:
    return {"b": "true/false", "f": "fractional numbers", "U": "strings", "O": "mixed values"}.get(
        array.dtype.kind, str(array.dtype))


def _binary_array(tensor: TensorInput, datatype: str, raw: bytes, count: int) -> np.ndarray:
    where = f"input {tensor.name!r}"
    if datatype == "BYTES":
        items = deserialize_bytes(raw, where)
        if len(items) != count:
            raise bad_request(f"{where}: shape {_shape_text(tensor.shape)} needs {count} BYTES elements, "
                              f"got {len(items)}")
        return np.array(items, dtype=object).reshape(tensor.shape)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise bad_request(f"{where}: shape {_shape_text(tensor.shape)} of {datatype} needs {count * dtype.itemsize} "
                          f"bytes, but binary_data_size is {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape)


def decode_request(payload: Any, binary: bytes, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                   max_batch: int, size_multiple: int = 1, max_pixels: int = 16_777_216,
                   min_side: int = 1) -> DecodedRequest:
    """Check a v2 request against the model's signature; return its inputs in the model's datatypes."""
    if not isinstance(payload, dict):
        raise bad_request(f"expected a JSON object (a KServe v2 inference request), got {type(payload).__name__}")
    has_booleans = bool(payload.pop(_HAS_BOOLEANS, True))
    try:  # data is list[Any]: pydantic-core copies the list without a Python call per value (5 µs for 784)
        request = InferRequestBody.model_validate(payload)
    except ValidationError as e:
        raise bad_request(describe_validation(e, "KServe v2 inference request")) from None
    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            raise bad_request(f"unknown input {tensor.name!r}; this model takes {_names(inputs)}")
        if tensor.name in arrays:
            raise bad_request(f"input {tensor.name!r} is given twice")
        if tensor.datatype not in DATATYPES:
            raise bad_request(f"input {tensor.name!r}: unknown datatype {tensor.datatype!r}; expected {spec.datatype}")
        allowed = exact_sources(spec.datatype)
        if tensor.datatype not in allowed:
            also = f" (or {', '.join(allowed[1:])}, which convert exactly)" if len(allowed) > 1 else ""
            raise bad_request(f"input {tensor.name!r}: expected datatype {spec.datatype}{also}, got {tensor.datatype}")
        check_shape(spec, tensor.shape, max_batch, size_multiple, max_pixels, min_side)
        count = math.prod(tensor.shape)
        size = _param(tensor.parameters, "binary_data_size", int, f"input {tensor.name!r}")
        if size is not None:
            if tensor.data is not None:
                raise bad_request(f"input {tensor.name!r}: give either 'data' or binary_data_size, not both")
            if size < 0 or offset + size > len(binary):
                raise bad_request(f"input {tensor.name!r}: binary_data_size {size} runs past the {len(binary)} bytes "
                                  "of binary data after the JSON header")
            array = _binary_array(tensor, tensor.datatype, binary[offset:offset + size], count)
            offset += size
        elif tensor.data is not None:
            array = _json_array(tensor, tensor.datatype, count, has_booleans)
        else:
            raise bad_request(f"input {tensor.name!r} has no data: give 'data' or the binary_data_size parameter")
        if tensor.datatype != spec.datatype:
            array = array.astype(DATATYPES[spec.datatype])
        arrays[tensor.name] = array
    if offset != len(binary):
        raise bad_request(f"the body has {len(binary)} bytes of binary data after the JSON header, but the inputs' "
                          f"binary_data_size add up to {offset}")
    missing = [spec for spec in inputs if spec.name not in arrays]
    if missing:
        spec = missing[0]
        raise bad_request(f"missing input {spec.name!r} ({spec.datatype}, shape {_shape_text(spec.shape)})")
    batches = {array.shape[0] for array in arrays.values()}
    if len(batches) > 1:
        raise bad_request(f"inputs disagree on the batch size: {sorted(batches)}")
    everything_binary = _param(request.parameters, "binary_data_output", bool, "request") or False
    out_specs = {spec.name: spec for spec in outputs}
    wanted: list[OutputRequest] = []
    for requested in request.outputs if request.outputs is not None else []:
        spec = out_specs.get(requested.name)
        if spec is None:
            raise bad_request(f"unknown output {requested.name!r}; this model has {_names(outputs)}")
        where = f"output {requested.name!r}"
        binary_flag = _param(requested.parameters, "binary_data", bool, where)
        k = _param(requested.parameters, "classification", int, where) or 0
        if k < 0:
            raise bad_request(f"{where}: classification must be a positive number of classes, got {k}")
        if k and len(spec.shape) != 2:
            raise bad_request(f"{where}: classification needs an output of shape [-1, classes], this one is "
                              f"{_shape_text(spec.shape)}")
        wanted.append(OutputRequest(requested.name, everything_binary if binary_flag is None else binary_flag, k))
    if request.outputs is None:
        wanted = [OutputRequest(spec.name, everything_binary) for spec in outputs]
    return DecodedRequest(request.id, arrays, wanted, batches.pop(), dict(request.parameters or {}))


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(repr(spec.name) for spec in specs)


# ----------------------------------------------------------------------------------------------
# encoding


def serialize_bytes(items: Sequence[bytes]) -> bytes:
    """BYTES tensors in binary: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def deserialize_bytes(raw: bytes, where: str = "BYTES tensor") -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise bad_request(f"{where}: a BYTES element length is cut short")
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise bad_request(f"{where}: a BYTES element says {n} bytes, only {len(raw) - offset} remain")
        items.append(raw[offset:offset + n])
        offset += n
    return items


def classify(scores: np.ndarray, k: int, labels: Sequence[str]) -> np.ndarray:
    """Triton's classification extension: ``"score:index[:label]"`` strings, best first, shape [batch, k]."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    use_labels = len(labels) == scores.shape[1]
    rows = [[(f"{float(row[i]):f}:{i}:{labels[i]}" if use_labels else f"{float(row[i]):f}:{i}").encode()
             for i in top] for row, top in zip(scores, order)]
    return np.array(rows, dtype=object).reshape(scores.shape[0], k)


def _dumps(response: dict[str, Any], plain: bool) -> bytes:
    """Compact JSON; orjson writes numpy arrays itself, but would write NaN and infinities as null, so
    non-finite outputs go through the standard library as NaN/Infinity, as Triton sends them."""
    if plain:
        try:
            return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:  # a numpy type orjson does not write; the standard library can
            pass
    for entry in response["outputs"]:
        if isinstance(entry.get("data"), np.ndarray):
            entry["data"] = entry["data"].tolist()
    return json.dumps(response, separators=(",", ":")).encode()


def encode_response(model_name: str, request: DecodedRequest, results: Mapping[str, np.ndarray],
                    labels: Sequence[str] = ()) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the length of its JSON header."""
    outputs, chunks, plain = [], [], True
    for wanted in request.outputs:
        array = results[wanted.name]
        if wanted.classification:
            array = classify(array, wanted.classification, labels)
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": wanted.name, "datatype": datatype, "shape": list(array.shape)}
        if wanted.binary:
            raw = (serialize_bytes(list(array.ravel())) if datatype == "BYTES"
                   else np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes())
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [item.decode("utf-8", "replace") for item in array.ravel()]
        else:
            entry["data"] = np.ascontiguousarray(array).ravel()
            plain = plain and (array.dtype.kind != "f" or bool(np.isfinite(array).all()))
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    header = _dumps(response, plain)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
