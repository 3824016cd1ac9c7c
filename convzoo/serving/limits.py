"""What one client may ask of the service: sizes, times and memory, each with a default that keeps a
2-core, 2 GiB machine standing, and an environment variable (``$CONVZOO_...``) to change it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from convzoo.bounds import parse_number
from convzoo.errors import ConvzooError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body: int = 64 * MiB  # bytes of one request body, as sent and after Content-Encoding is undone
    max_json: int = 4 * MiB  # bytes of a v2 request's JSON part; larger tensors travel as binary
    max_json_values: int = 1 << 19  # numbers in a JSON body: bounds the time its parse holds the GIL
    max_pixels: int = 2048 * 2048  # pixels of one image or one sample's spatial dimensions
    max_batch: int = 32
    style_max_side: int = 1024  # the longest side a style net renders; callers cannot raise it
    tile: int = 512  # segmentation inputs larger than this run tile by tile
    memory_budget: int = 1024 * MiB  # request memory in flight (bodies, decoded tensors, activations)
    memory_wait_s: float = 30.0  # how long a request waits for budget before a 503
    header_timeout_s: float = 10.0  # from the first byte of a request to the end of its headers
    max_header_bytes: int = 64 * 1024  # the request line and headers together; more is answered 431
    max_headers: int = 100  # header fields in one request (browsers send about 20)
    body_timeout_s: float = 10.0  # the longest silence while a body is being sent
    body_min_rate: int = 4096  # bytes/s a body must average, counted from body_grace_s after its headers
    body_grace_s: float = 5.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024  # open connections for requests; beyond it, only health probes
    probe_slots: int = 64  # connections past max_connections that may ask /v2/health/* and nothing else

    ENV = {"max_body": "CONVZOO_MAX_BODY_BYTES", "max_json": "CONVZOO_MAX_JSON_BYTES",
           "max_json_values": "CONVZOO_MAX_JSON_VALUES", "max_pixels": "CONVZOO_MAX_PIXELS",
           "style_max_side": "CONVZOO_STYLE_MAX_SIDE", "tile": "CONVZOO_TILE",
           "memory_budget": "CONVZOO_MEMORY_BUDGET_BYTES", "memory_wait_s": "CONVZOO_MEMORY_WAIT_S",
           "header_timeout_s": "CONVZOO_HEADER_TIMEOUT_S", "max_header_bytes": "CONVZOO_MAX_HEADER_BYTES",
           "max_headers": "CONVZOO_MAX_HEADERS", "body_timeout_s": "CONVZOO_BODY_TIMEOUT_S",
           "body_min_rate": "CONVZOO_BODY_MIN_RATE", "body_grace_s": "CONVZOO_BODY_GRACE_S",
           "keep_alive_s": "CONVZOO_KEEP_ALIVE_S", "max_connections": "CONVZOO_MAX_CONNECTIONS",
           "probe_slots": "CONVZOO_PROBE_SLOTS"}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConvzooError(f"limit {f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, **given: float | None) -> Limits:
        """Defaults, overridden by ``$CONVZOO_...``, overridden by what is given (None: not given)."""
        values: dict[str, int | float] = {}
        for f in dataclasses.fields(cls):
            text = os.environ.get(cls.ENV.get(f.name, ""), "")
            if text:
                values[f.name] = parse_number(text, f"${cls.ENV[f.name]}", 0, 2 ** 62, integer=f.type != "float")
        values.update({key: value for key, value in given.items() if value is not None})
        return cls(**values)
